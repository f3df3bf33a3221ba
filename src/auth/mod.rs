//! Authentication: RFC 7523 client assertions, RFC 9449 DPoP proofs, the token
//! manager and the reqwest-middleware layer that signs every request.
//!
//! The layer works with any OAuth 2 server that accepts `private_key_jwt` client assertions and
//! DPoP-bound tokens; Ralio is one preset ([`TokenManagerConfig::ralio`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ralio::auth::{DpopAuth, TokenManager, TokenManagerConfig};
//! use ralio::keys::PrivateKey;
//!
//! let key = PrivateKey::from_pem_file("key.pem".as_ref())?;
//! let config = TokenManagerConfig::new("https://auth.example/oauth/token", "my-client")?;
//! let tokens = TokenManager::builder(config, Arc::new(key)).build()?;
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(DpopAuth::new(tokens))
//!     .build();
//! let resp = http.get("https://api.example/resource").send().await?;
//! println!("{}", resp.status());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod clock;
mod error;
mod jws;
mod middleware;
mod token;

pub use clock::{Clock, OffsetClock, SystemClock};
pub use error::AuthError;
pub use jws::{ClientAssertion, DpopProof, Htu, HtuError, JwsSigner, ProofRequest};
pub use middleware::DpopAuth;
#[cfg(any(fuzzing, test))]
pub(crate) use token::token_lifetime;
pub use token::{AccessToken, TokenInfo, TokenManager, TokenManagerBuilder, TokenManagerConfig};
