//! Shared server state and the protocol logic that does not depend on HTTP. One
//! `std::sync::Mutex`, never held across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use jsonwebtoken::DecodingKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::jose;
use crate::{Config, Counters, Faults, NonceMode, SandboxError, TicketSpec};

/// Leeway for `iat` in the future and for `exp`, in seconds (the `Date` header has 1 s resolution).
pub(crate) const LEEWAY_SECS: i64 = 10;
/// Oldest accepted DPoP proof, in seconds.
pub(crate) const PROOF_MAX_AGE_SECS: i64 = 300;
/// Longest accepted client-assertion lifetime (`exp - iat`), in seconds.
pub(crate) const ASSERTION_MAX_LIFETIME_SECS: i64 = 300;
/// Fewest remembered `jti`s worth a sweep of the forgotten ones.
const JTI_SWEEP_MIN: usize = 10_000;
/// A nonce is replaced after this many seconds; the previous one stays valid until the next rotation.
const NONCE_ROTATION_SECS: i64 = 60;
/// How long a legacy registration waits for a decision.
pub(crate) const LEGACY_PENDING_SECS: i64 = 15 * 60;

/// Why a ticket's scope ceiling is one the real console would never issue: `agents:config` is
/// human-only, unknown scopes do not exist, and a ticket grants at least one scope.
pub(crate) fn ticket_scopes_error(scopes: &[String]) -> Option<String> {
    if scopes.is_empty() {
        return Some(
            "a ticket must grant at least one scope: agents:execute or transactions:read".into(),
        );
    }
    scopes.iter().find_map(|s| match s.as_str() {
        crate::SCOPE_AGENTS_EXECUTE | crate::SCOPE_TRANSACTIONS_READ => None,
        crate::SCOPE_AGENTS_CONFIG => Some(
            "agents:config is reserved for people: a credential binding cannot hold it, so no ticket grants it"
                .to_owned(),
        ),
        other => Some(format!(
            "unknown scope {other:?}: a ticket grants agents:execute and/or transactions:read"
        )),
    })
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) base_url: String,
    inner: Mutex<Inner>,
    /// What the console's open pages follow: bumped when something they show changes.
    /// Its value: whether the sandbox is shutting down (then the pages' event streams end, so
    /// no open page keeps the server from stopping); every send wakes the pages.
    changes: tokio::sync::watch::Sender<bool>,
}

pub(crate) struct Ticket {
    pub(crate) agent_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) used: Option<(DateTime<Utc>, String)>,
}

pub(crate) struct Binding {
    pub(crate) key: DecodingKey,
    pub(crate) jkt: String,
    pub(crate) agent_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) revoked: bool,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PendingStatus {
    Pending,
    Active(String),
    Rejected,
}

pub(crate) struct PendingRegistration {
    pub(crate) poll_token: String,
    pub(crate) key: DecodingKey,
    pub(crate) jkt: String,
    pub(crate) agent_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) status: PendingStatus,
}

impl PendingRegistration {
    /// Still waiting for the owner's decision at `now`: neither decided nor expired.
    pub(crate) fn waiting(&self, now: DateTime<Utc>) -> bool {
        self.status == PendingStatus::Pending && self.expires_at > now
    }
}

pub(crate) struct AccessToken {
    pub(crate) client_id: String,
    pub(crate) jkt: String,
    /// base64url(SHA-256(token)), the `ath` every proof sent with it must carry: hashed once at
    /// mint, not on every request.
    pub(crate) ath: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) family: u64,
    pub(crate) expires_at: DateTime<Utc>,
}

pub(crate) struct RefreshToken {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) family: u64,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) rotated: bool,
}

pub(crate) struct Family {
    pub(crate) client_id: String,
    pub(crate) revoked: bool,
}

#[derive(Clone, Serialize)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) role: String,
    pub(crate) content: String,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Clone, Serialize)]
pub(crate) struct Transaction {
    pub(crate) id: String,
    pub(crate) amount: String,
    pub(crate) currency: String,
    pub(crate) status: String,
    pub(crate) date: DateTime<Utc>,
    pub(crate) creditor: Option<String>,
    pub(crate) debtor: Option<String>,
    pub(crate) reference: Option<String>,
    pub(crate) payment_intent_id: Option<String>,
}

#[derive(Clone, Serialize)]
pub(crate) struct PaymentInstruction {
    pub(crate) amount: String,
    pub(crate) currency: String,
    pub(crate) status: String,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) creditor_account: Option<String>,
    pub(crate) creditor_name: Option<String>,
    pub(crate) debtor_account: Option<String>,
    pub(crate) debtor_name: Option<String>,
    pub(crate) reference: Option<String>,
    pub(crate) transaction_id: Option<String>,
    pub(crate) transaction_status: Option<String>,
    pub(crate) execution_error: Option<String>,
}

#[derive(Clone, Serialize)]
pub(crate) struct PaymentIntent {
    pub(crate) id: String,
    pub(crate) agent_id: String,
    pub(crate) agent_name: Option<String>,
    pub(crate) approval_status: String,
    pub(crate) execution_status: String,
    pub(crate) total_amount: String,
    pub(crate) currency: String,
    pub(crate) instruction_count: u32,
    pub(crate) instructions: Vec<PaymentInstruction>,
    pub(crate) conversation_id: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) user_request_summary: Option<String>,
    pub(crate) decision_reason: Option<String>,
    pub(crate) decided_at: Option<DateTime<Utc>>,
    pub(crate) alignment_outcome: Option<String>,
    #[serde(skip)]
    pub(crate) amount: Decimal,
}

pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) agent_number: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) account: String,
    pub(crate) balance: Decimal,
    /// Oldest first; lists reverse it.
    pub(crate) transactions: Vec<Transaction>,
    /// Oldest first; lists reverse it.
    pub(crate) intents: Vec<PaymentIntent>,
    pub(crate) conversations: HashMap<String, Vec<Message>>,
}

impl Agent {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "agent_number": self.agent_number,
            "banking_provider": "sandbox",
            "created_at": self.created_at,
        })
    }
}

struct Nonces {
    current: String,
    previous: Option<String>,
    issued_at: DateTime<Utc>,
}

pub(crate) struct Inner {
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
    pub(crate) default_agent_id: String,
    pub(crate) rng: StdRng,
    pub(crate) tickets: HashMap<String, Ticket>,
    pub(crate) bindings: BTreeMap<String, Binding>,
    pub(crate) pending: Vec<PendingRegistration>,
    pub(crate) access_tokens: HashMap<String, AccessToken>,
    pub(crate) refresh_tokens: HashMap<String, RefreshToken>,
    pub(crate) families: HashMap<u64, Family>,
    next_family: u64,
    /// jti (namespaced) -> when it may be forgotten.
    seen_jtis: HashMap<String, DateTime<Utc>>,
    /// Size of `seen_jtis` that triggers the next sweep of forgotten entries.
    jti_sweep_at: usize,
    pub(crate) agents: BTreeMap<String, Agent>,
    nonces: Nonces,
    /// client_id -> (second, requests in it).
    rate_windows: HashMap<String, (i64, u32)>,
    /// Varied answers: access token -> resource calls it has made.
    token_calls: HashMap<String, u32>,
}

impl Shared {
    pub(crate) fn new(config: Config, base_url: String) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let default_agent_id = format!("agt_{:012x}", rng.random::<u64>() >> 16);
        let now = offset_now(config.faults.clock_offset_secs);
        let mut inner = Inner {
            faults: config.faults.clone(),
            counters: Counters::default(),
            default_agent_id: default_agent_id.clone(),
            rng,
            tickets: HashMap::new(),
            bindings: BTreeMap::new(),
            pending: Vec::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            families: HashMap::new(),
            next_family: 1,
            seen_jtis: HashMap::new(),
            jti_sweep_at: JTI_SWEEP_MIN,
            agents: BTreeMap::new(),
            nonces: Nonces {
                current: jose::random_token(""),
                previous: None,
                issued_at: now,
            },
            rate_windows: HashMap::new(),
            token_calls: HashMap::new(),
        };
        inner.ensure_agent(&default_agent_id, &config, "Sandbox Payments Agent");
        Self {
            config,
            base_url,
            inner: Mutex::new(inner),
            changes: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Tells the console's open pages that what they show changed (an intent or registration
    /// created or decided, money moved).
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|_| ());
    }

    /// Ends the console's event streams: the sandbox is stopping.
    pub(crate) fn close_changes(&self) {
        self.changes.send_replace(true);
    }

    /// A receiver of the change signal, for one open console page.
    pub(crate) fn watch_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.changes.subscribe()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied protocol step that matters
        // more than keeping the test server up.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    pub(crate) fn mint_ticket(&self, spec: TicketSpec) -> String {
        let mut inner = self.lock();
        let agent_id = spec
            .agent_id
            .unwrap_or_else(|| inner.default_agent_id.clone());
        inner.ensure_agent(&agent_id, &self.config, "");
        let ticket = jose::random_token("ralio-reg-");
        let expires_at = after(inner.now(), spec.expires_in);
        inner.tickets.insert(
            ticket.clone(),
            Ticket {
                agent_id,
                scopes: spec.scopes,
                expires_at,
                used: None,
            },
        );
        ticket
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
        key: &str,
        approve: bool,
    ) -> Result<Option<String>, SandboxError> {
        let decided = self.lock().decide_registration(key, approve);
        if decided.is_ok() {
            self.changed();
        }
        decided
    }

    pub(crate) fn pending_registration_fingerprints(&self) -> Vec<String> {
        let inner = self.lock();
        let now = inner.now();
        inner
            .pending
            .iter()
            .filter(|p| p.waiting(now))
            .map(|p| p.jkt.clone())
            .collect()
    }

    pub(crate) fn decide_intent(&self, id: &str, reason: Option<&str>) -> Result<(), SandboxError> {
        let decided = self.lock().decide_intent(id, reason);
        if decided.is_ok() {
            self.changed();
        }
        decided
    }

    pub(crate) fn pending_intent_ids(&self) -> Vec<String> {
        let inner = self.lock();
        let mut pending: Vec<&PaymentIntent> = inner
            .agents
            .values()
            .flat_map(|a| a.intents.iter())
            .filter(|i| i.approval_status == "pending_approval")
            .collect();
        pending.sort_by_key(|i| std::cmp::Reverse(i.created_at));
        pending.into_iter().map(|i| i.id.clone()).collect()
    }

    pub(crate) fn revoke_families(&self, client_id: &str) -> Result<(), SandboxError> {
        let mut inner = self.lock();
        if !inner.bindings.contains_key(client_id) {
            return Err(SandboxError::UnknownBinding {
                client_id: client_id.to_owned(),
            });
        }
        for f in inner
            .families
            .values_mut()
            .filter(|f| f.client_id == client_id)
        {
            f.revoked = true;
        }
        Ok(())
    }

    pub(crate) fn revoke_binding(&self, client_id: &str) -> Result<(), SandboxError> {
        let mut inner = self.lock();
        let b = inner
            .bindings
            .get_mut(client_id)
            .ok_or_else(|| SandboxError::UnknownBinding {
                client_id: client_id.to_owned(),
            })?;
        b.revoked = true;
        Ok(())
    }

    pub(crate) fn default_agent_id(&self) -> String {
        self.lock().default_agent_id.clone()
    }

    pub(crate) fn rotate_nonce(&self) {
        let mut inner = self.lock();
        let now = inner.now();
        inner.rotate_nonce_at(now);
    }
}

impl Inner {
    /// The server's clock: real time plus the clock-offset fault.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        offset_now(self.faults.clock_offset_secs)
    }

    /// A deterministic id (given the seed and the order of requests).
    pub(crate) fn new_id(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.rng.random::<u64>())
    }

    pub(crate) fn ensure_agent(&mut self, id: &str, config: &Config, name: &str) {
        if self.agents.contains_key(id) {
            return;
        }
        let n = self.agents.len() + 1;
        let name = if name.is_empty() {
            format!("Sandbox Agent {n}")
        } else {
            name.to_owned()
        };
        let account = format!(
            "GB{:02}RALO{:014}",
            self.rng.random_range(10..99),
            self.rng.random_range(0..99_999_999_999_999u64)
        );
        let agent = Agent {
            id: id.to_owned(),
            name,
            agent_number: format!("AG-{:04}", n),
            created_at: self.now(),
            account,
            balance: config.balance,
            transactions: Vec::new(),
            intents: Vec::new(),
            conversations: HashMap::new(),
        };
        self.agents.insert(id.to_owned(), agent);
    }

    /// Records a jti; `false` when it was already seen. Expired entries are forgotten.
    pub(crate) fn check_jti(&mut self, namespaced_jti: &str) -> bool {
        !self.seen_jtis.contains_key(namespaced_jti)
    }

    pub(crate) fn record_jti(&mut self, namespaced_jti: String, forget_after: DateTime<Utc>) {
        // Sweep when the map has doubled since the last sweep, not on every insert past a fixed
        // size: a suite that sends more proofs than that within the replay window would
        // otherwise pay a scan of every remembered jti on every request.
        if self.seen_jtis.len() >= self.jti_sweep_at {
            let now = self.now();
            self.seen_jtis.retain(|_, t| *t > now);
            self.jti_sweep_at = (self.seen_jtis.len() * 2).max(JTI_SWEEP_MIN);
        }
        self.seen_jtis.insert(namespaced_jti, forget_after);
    }

    fn rotate_nonce_at(&mut self, now: DateTime<Utc>) {
        let fresh = jose::random_token("");
        let old = std::mem::replace(&mut self.nonces.current, fresh);
        self.nonces.previous = Some(old);
        self.nonces.issued_at = now;
    }

    /// The nonce to hand out now (rotating it when due).
    pub(crate) fn current_nonce(&mut self) -> String {
        let now = self.now();
        if (now - self.nonces.issued_at).num_seconds() >= NONCE_ROTATION_SECS {
            self.rotate_nonce_at(now);
        }
        self.nonces.current.clone()
    }

    /// `Ok` when the proof's nonce is acceptable under `mode`; `Err(fresh_nonce)` otherwise.
    pub(crate) fn check_nonce(
        &mut self,
        mode: NonceMode,
        presented: Option<&str>,
    ) -> Result<(), String> {
        let current = self.current_nonce();
        let valid = |n: &str| n == current || self.nonces.previous.as_deref() == Some(n);
        match (mode, presented) {
            (NonceMode::Off, _) => Ok(()),
            (NonceMode::Offer, None) => Ok(()),
            (_, Some(n)) if valid(n) => Ok(()),
            _ => Err(current),
        }
    }

    pub(crate) fn new_family(&mut self, client_id: &str) -> u64 {
        let id = self.next_family;
        self.next_family += 1;
        self.families.insert(
            id,
            Family {
                client_id: client_id.to_owned(),
                revoked: false,
            },
        );
        id
    }

    pub(crate) fn family_alive(&self, family: u64) -> bool {
        self.families.get(&family).is_some_and(|f| !f.revoked)
    }

    /// Counts a resource call of `token`; on its `every`-th call the token expires (it answered
    /// with a plain 401) and this returns `true`, counted in `plain_401s`.
    pub(crate) fn plain_401_due(&mut self, token: &str, every: u32) -> bool {
        if self.token_calls.len() > 10_000 {
            self.token_calls.clear();
        }
        let calls = self.token_calls.entry(token.to_owned()).or_insert(0);
        *calls += 1;
        if *calls < every {
            return false;
        }
        self.token_calls.remove(token);
        let now = self.now();
        if let Some(at) = self.access_tokens.get_mut(token) {
            at.expires_at = now;
        }
        self.counters.plain_401s += 1;
        true
    }

    /// Fixed one-second windows per binding; `Err(retry_after_secs)` when over the limit.
    pub(crate) fn rate_check(&mut self, client_id: &str, limit: u32) -> Result<(), u64> {
        let second = Utc::now().timestamp();
        let w = self
            .rate_windows
            .entry(client_id.to_owned())
            .or_insert((second, 0));
        if w.0 != second {
            *w = (second, 0);
        }
        w.1 += 1;
        if w.1 > limit { Err(1) } else { Ok(()) }
    }

    /// Approves (a new binding; its client id) or rejects a pending legacy registration, found
    /// by poll token or key fingerprint.
    pub(crate) fn decide_registration(
        &mut self,
        key: &str,
        approve: bool,
    ) -> Result<Option<String>, SandboxError> {
        let inner = self;
        let now = inner.now();
        let idx = inner
            .pending
            .iter()
            .position(|p| (p.poll_token == key || p.jkt == key) && p.waiting(now))
            .ok_or(SandboxError::UnknownRegistration)?;
        if !approve {
            inner.pending[idx].status = PendingStatus::Rejected;
            return Ok(None);
        }
        let client_id = inner.new_id("cb");
        let p = &inner.pending[idx];
        let binding = Binding {
            key: p.key.clone(),
            jkt: p.jkt.clone(),
            agent_id: p.agent_id.clone(),
            scopes: p.scopes.clone(),
            revoked: false,
        };
        inner.pending[idx].status = PendingStatus::Active(client_id.clone());
        inner.bindings.insert(client_id.clone(), binding);
        Ok(Some(client_id))
    }

    pub(crate) fn decide_intent(
        &mut self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<(), SandboxError> {
        let now = self.now();
        let (agent_id, idx) = self
            .agents
            .iter()
            .find_map(|(aid, a)| {
                a.intents
                    .iter()
                    .position(|i| i.id == id)
                    .map(|idx| (aid.clone(), idx))
            })
            .ok_or_else(|| SandboxError::UnknownIntent { id: id.to_owned() })?;
        let status = self.agents[&agent_id].intents[idx].approval_status.clone();
        if status != "pending_approval" {
            return Err(SandboxError::IntentNotPending {
                id: id.to_owned(),
                status,
            });
        }
        match reason {
            Some(reason) => {
                let Some(intent) = self.agents.get_mut(&agent_id).map(|a| &mut a.intents[idx])
                else {
                    return Err(SandboxError::UnknownIntent { id: id.to_owned() });
                };
                intent.approval_status = "rejected_by_user".into();
                intent.execution_status = "cancelled".into();
                intent.decision_reason = Some(reason.to_owned());
                intent.decided_at = Some(now);
                for ins in &mut intent.instructions {
                    ins.status = "cancelled".into();
                }
            }
            None => {
                if let Some(intent) = self.agents.get_mut(&agent_id).map(|a| &mut a.intents[idx]) {
                    intent.approval_status = "approved_by_user".into();
                    intent.decision_reason = Some("Approved by the account owner".into());
                    intent.decided_at = Some(now);
                }
                self.execute_intent(&agent_id, idx);
            }
        }
        Ok(())
    }

    /// Moves the money for an approved intent: a completed transaction and a lower balance, or
    /// a failed execution when the balance does not cover it.
    pub(crate) fn execute_intent(&mut self, agent_id: &str, idx: usize) {
        let now = self.now();
        let tx_id = self.new_id("tx");
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        let agent_name = agent.name.clone();
        let Some(intent) = agent.intents.get_mut(idx) else {
            return;
        };
        let amount = intent.amount;
        if amount > agent.balance {
            intent.execution_status = "failed".into();
            for ins in &mut intent.instructions {
                ins.status = "failed".into();
                ins.execution_error = Some(format!(
                    "insufficient funds: balance is GBP {}",
                    money(agent.balance)
                ));
            }
            return;
        }
        agent.balance -= amount;
        intent.execution_status = "completed".into();
        let mut tx = None;
        for ins in &mut intent.instructions {
            ins.status = "completed".into();
            ins.transaction_id = Some(tx_id.clone());
            ins.transaction_status = Some("completed".into());
            tx = Some(Transaction {
                id: tx_id.clone(),
                amount: ins.amount.clone(),
                currency: ins.currency.clone(),
                status: "completed".into(),
                date: now,
                creditor: ins.creditor_name.clone(),
                debtor: Some(agent_name.clone()),
                reference: ins.reference.clone(),
                payment_intent_id: Some(intent.id.clone()),
            });
        }
        if let Some(tx) = tx {
            agent.transactions.push(tx);
        }
    }
}

/// Real time moved by `offset_secs`, clamped to ±100 years so no input can overflow the clock.
fn offset_now(offset_secs: i64) -> DateTime<Utc> {
    const LIMIT: i64 = 100 * 366 * 24 * 3600;
    let delta = ChronoDuration::seconds(offset_secs.clamp(-LIMIT, LIMIT));
    let now = Utc::now();
    now.checked_add_signed(delta).unwrap_or(now)
}

/// `at + lifetime`, saturating at the end of time instead of overflowing.
pub(crate) fn after(at: DateTime<Utc>, lifetime: std::time::Duration) -> DateTime<Utc> {
    ChronoDuration::from_std(lifetime)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `1234.5` -> `"1,234.50"`.
pub(crate) fn money(amount: Decimal) -> String {
    let plain = decimal_2dp(amount);
    let (sign, digits) = plain
        .strip_prefix('-')
        .map_or(("", plain.as_str()), |d| ("-", d));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{frac}")
}

/// `500` -> `"500.00"`: the wire form of amounts.
pub(crate) fn decimal_2dp(amount: Decimal) -> String {
    let mut d = amount.round_dp(2);
    d.rescale(2);
    d.to_string()
}
