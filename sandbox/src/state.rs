//! Shared server state. One `std::sync::Mutex`, never held across an await.

use std::sync::{Mutex, MutexGuard};

use crate::{Config, Counters, Faults, SandboxError, TicketSpec};

pub(crate) struct Shared {
    pub(crate) config: Config,
    inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    pub(crate) default_agent_id: String,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        let faults = config.faults.clone();
        Self {
            config,
            inner: Mutex::new(Inner {
                faults,
                counters: Counters::default(),
                default_agent_id: "agt_sandbox".to_owned(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters
        // to a test server; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn mint_ticket(&self, _spec: TicketSpec) -> String {
        "ralio-reg-todo".to_owned()
    }
    pub(crate) fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }
    pub(crate) fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }
    pub(crate) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }
    pub(crate) fn decide_registration(
        &self,
        _key: &str,
        _approve: bool,
    ) -> Result<Option<String>, SandboxError> {
        Err(SandboxError::UnknownRegistration)
    }
    pub(crate) fn pending_registration_fingerprints(&self) -> Vec<String> {
        Vec::new()
    }
    pub(crate) fn decide_intent(
        &self,
        id: &str,
        _reason: Option<&str>,
    ) -> Result<(), SandboxError> {
        Err(SandboxError::UnknownIntent { id: id.to_owned() })
    }
    pub(crate) fn pending_intent_ids(&self) -> Vec<String> {
        Vec::new()
    }
    pub(crate) fn revoke_families(&self, client_id: &str) -> Result<(), SandboxError> {
        Err(SandboxError::UnknownBinding {
            client_id: client_id.to_owned(),
        })
    }
    pub(crate) fn revoke_binding(&self, client_id: &str) -> Result<(), SandboxError> {
        Err(SandboxError::UnknownBinding {
            client_id: client_id.to_owned(),
        })
    }
    pub(crate) fn default_agent_id(&self) -> String {
        self.lock().default_agent_id.clone()
    }
}
