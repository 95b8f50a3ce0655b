//! # devauth — the local identity provider of the dev stack and the tests
//!
//! With `AUTH=jwt` the gateway accepts only bearer tokens (JWT, RS256 or ES256) whose signature
//! verifies against a JWKS, chosen by the token's `kid`, for the configured issuer and audience.
//! In production an external identity provider issues them; on a developer's machine, in CI and
//! in the tests this crate does, so the whole authenticated path runs without any network
//! service of someone else:
//!
//! - [`generate`] writes a P-256 signing key (PKCS#8 PEM, mode 0600), its `kid` and the
//!   `jwks.json` the gateway reads (`AUTH_JWKS`); `rotate` makes a new key the signing key while
//!   the JWKS keeps the previous public key, so tokens already issued keep verifying.
//! - [`Signer`] signs tokens with the claims the gateway checks (`iss`, `aud`, `sub`, `exp`,
//!   `nbf`, `iat`, `jti`, `scope`), and — for negative tests — anything else
//!   ([`Signer::sign_raw`]: expired, wrong audience, unknown `kid`, mismatched `alg`).
//! - [`server`] is the tiny HTTP side the frontend's dev sign-in uses (`POST /auth/token`) and
//!   that serves the JWKS over HTTP (`GET /auth/jwks.json`), for an `AUTH_JWKS` given as a URL.
//!
//! **Not for production:** the server hands out a token for any subject and any scope it is
//! asked for. It exists so that a person or a test can act as a user or an operator locally.
//!
//! The binary `devauth` wraps all three (`devauth keys`, `devauth token`, `devauth serve`).

mod keys;
pub mod server;
mod signer;

pub use keys::{
    JWKS_FILE, KEY_FILE, KID_FILE, KeyFiles, generate, generate_rsa, jwks, public_jwk_json,
};
pub use signer::{Signer, unsecured};

/// The issuer (`iss`) of dev tokens when `AUTH_ISSUER` is unset; the gateway's default too.
pub const DEFAULT_ISSUER: &str = "orders-payments-dev";
/// The audience (`aud`) of dev tokens when `AUTH_AUDIENCE` is unset; the gateway's default too.
pub const DEFAULT_AUDIENCE: &str = "orders-payments";
/// How long [`Signer::token`] tokens (and the server's) are valid, in seconds: an hour, so a
/// dev session outlives a test run but a leaked token does not live for days.
pub const DEFAULT_TTL_S: u64 = 3600;

/// `AUTH`: `jwt` or `off` (the same variable the services read).
pub const ENV_AUTH: &str = "AUTH";
/// Path of the private key PEM tokens are signed with.
pub const ENV_SIGNING_KEY: &str = "AUTH_SIGNING_KEY";
/// The `kid` put in the tokens' header (default: the key's RFC 7638 thumbprint).
pub const ENV_SIGNING_KID: &str = "AUTH_SIGNING_KID";
/// The issuer (`iss`) of the tokens (default [`DEFAULT_ISSUER`]).
pub const ENV_ISSUER: &str = "AUTH_ISSUER";
/// The audience (`aud`) of the tokens (default [`DEFAULT_AUDIENCE`]).
pub const ENV_AUDIENCE: &str = "AUTH_AUDIENCE";

/// Everything that can go wrong loading keys or configuration; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The key material is not usable (not a P-256 or RSA private key, too short, corrupt).
    #[error("signing key: {0}")]
    Key(String),
    /// A file devauth wrote (kid, jwks.json) does not have the expected content.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file concerned.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable is missing or invalid.
    #[error("environment variable {name}: {reason}")]
    Config {
        /// The variable's name.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Test support: a fresh directory under the system's temp dir, removed when dropped (also when
/// the test fails).
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};

    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "devauth-{name}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl std::ops::Deref for TempDir {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
