//! Registration against the sandbox.
