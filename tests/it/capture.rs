//! Capturing `tracing` output, and running a capture test in a child process.
//!
//! A thread-local subscriber (`set_default`) in a test binary that runs other tests in parallel
//! can miss events, because tracing caches each callsite's interest process-wide: a "no secret
//! in the logs" test could then pass for the wrong reason. So each capture test runs its body in
//! a child process (this same test binary, one ignored test) with a global subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `tracing` writer that keeps everything written to it.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Installs the process-wide subscriber: every event and span (entered, exited, closed) at
    /// TRACE, without colours, into a new capture.
    pub(crate) fn install_global() -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        capture
    }

    /// What was written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The environment variable that tells a child test it was started by its parent.
pub(crate) const CHILD_VAR: &str = "RALIO_CAPTURE_CHILD";

/// True in the child process started by [`run_child`]; an ignored child test returns at once
/// when run any other way (`cargo test -- --ignored`).
pub(crate) fn in_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// Runs the ignored test `test` (its full path, `module::name`) alone in a child process and
/// asserts that it passed and printed `marker` (so a child that returned early cannot pass).
pub(crate) async fn run_child(test: &str, marker: &str) {
    run_child_with(test, marker, &[]).await;
}

/// [`run_child`] with `vars` set in the child's environment.
pub(crate) async fn run_child_with(test: &str, marker: &str, vars: &[(&str, &str)]) {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .envs(vars.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{test} failed in its child process: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(marker),
        "{test} did not reach its end: {stdout}"
    );
}
