//! `--auth`: whether the load carries bearer tokens, shared by `loadgen` and `stream-probe`.
//!
//! Tokens are minted before anything is measured (one signature each), so a run with
//! authentication on and one with it off differ only by what the system does with them: the
//! gateway's verification and the services' identity check, which is what the comparison is
//! about.

use std::time::Duration;

use anyhow::{Context, bail};
use devauth::Signer;
use reqwest::header::HeaderValue;

/// The operator scope: opening accounts with a balance (the services' own constant).
pub use platform::auth::TOPUP_SCOPE;

/// What `--auth` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthFlag {
    /// Tokens, always: fails when the environment gives no signing key.
    Jwt,
    /// No `Authorization` header (a stack with `AUTH=off`).
    Off,
    /// Tokens when the environment describes a signer (`. .stack/env` of a stack with
    /// `AUTH=jwt`), none otherwise.
    Auto,
}

/// The signer `flag` asks for: `None` means no tokens are sent.
pub fn signer(flag: AuthFlag) -> anyhow::Result<Option<Signer>> {
    if flag == AuthFlag::Off {
        return Ok(None);
    }
    let signer = Signer::from_env().context("the signing key (AUTH_SIGNING_KEY)")?;
    if flag == AuthFlag::Jwt && signer.is_none() {
        bail!("--auth jwt: no signer in the environment (AUTH=off, or AUTH_SIGNING_KEY unset)");
    }
    Ok(signer)
}

/// `Bearer <token>` for `subject` with `scopes`, valid for `ttl`, ready to be sent.
pub fn bearer(signer: &Signer, subject: &str, scopes: &[&str], ttl: Duration) -> HeaderValue {
    let value = format!("Bearer {}", signer.token_for(subject, scopes, ttl));
    // A JWT is base64url and dots: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"))
}
