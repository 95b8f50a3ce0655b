//! Bearer tokens: from the `Authorization` header to a verified [`Identity`].
//!
//! Invariants: a token is accepted only if its header names RS256 or ES256 and the key its `kid`
//! selects is of that same algorithm; its signature verifies; `iss` and `aud` are the configured
//! ones; `exp` is in the future and `nbf` (when present) in the past, both within the leeway;
//! `sub` is present and not empty. Anything else is a [`TokenError`], answered 401.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use poem::http::{HeaderMap, header};
use serde::Deserialize;

use platform::auth::Identity;

use super::cache::{self, Verified};
use super::jwks::Jwks;

/// Why a request's token was refused; the message is safe to show the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization` header.
    #[error("a bearer token is required")]
    Missing,
    /// Not `Bearer <token>`, sent twice, or not three base64url parts.
    #[error("the token is malformed")]
    Malformed,
    /// `alg` is not RS256 or ES256 (`none`, HS256, …).
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// No key with the token's `kid`.
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` has not come yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is not this API.
    #[error("the token is for another audience")]
    Audience,
    /// `iss` is not the configured issuer.
    #[error("the token is from another issuer")]
    Issuer,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is missing or has the wrong type.
    #[error("the token lacks a required claim")]
    Claims,
}

impl TokenError {
    /// The metrics label of this outcome.
    pub fn label(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Signature => "signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Audience => "audience",
            TokenError::Issuer => "issuer",
            TokenError::Claims => "claims",
        }
    }
}

/// The claims the system reads; the rest of the token is ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    /// Checked by the library; kept to bound how long the verified token is remembered
    /// (a NumericDate may have a fraction, RFC 7519 §2).
    exp: f64,
    /// OAuth 2.0 scopes, space-separated.
    #[serde(default)]
    scope: Option<String>,
}

/// Checks tokens against one issuer's keys for one audience.
pub struct Verifier {
    jwks: Arc<Jwks>,
    /// The checks for an RS256 key and for an ES256 key, built once: every request uses one.
    rs256: Validation,
    es256: Validation,
    leeway_s: u64,
    /// Tokens that passed, by digest: a client's later requests skip the signature check.
    verified: Verified,
}

impl Verifier {
    /// A verifier of tokens `issuer` signed with `jwks`' keys for `audience`, allowing
    /// `leeway_s` seconds of clock difference on `exp` and `nbf`.
    pub fn new(jwks: Arc<Jwks>, issuer: String, audience: String, leeway_s: u64) -> Self {
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&issuer]);
            validation.set_audience(&[&audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = leeway_s;
            validation.validate_nbf = true;
            validation
        };
        Verifier {
            jwks,
            rs256: validation(Algorithm::RS256),
            es256: validation(Algorithm::ES256),
            leeway_s,
            verified: Verified::default(),
        }
    }

    /// The token of `headers`' `Authorization: Bearer …`, verified.
    pub async fn verify_headers(&self, headers: &HeaderMap) -> Result<Identity, TokenError> {
        let token = bearer(headers)?;
        self.verify(token).await
    }

    /// Verifies one compact JWS (or finds it verified moments ago, see [`super::cache`]).
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let now = platform::auth::now_unix();
        let digest = cache::digest(token);
        if let Some(identity) = self.verified.get(&digest, now) {
            return Ok(identity);
        }
        let head = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // An `alg` outside the library's list (`none`) fails the header's parse.
            ErrorKind::Json(_) if token_names_alg_none(token) => TokenError::Algorithm,
            _ => TokenError::Malformed,
        })?;
        if !matches!(head.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenError::Algorithm);
        }
        let key = self
            .jwks
            .key(head.kid.as_deref())
            .await
            .ok_or(TokenError::UnknownKey)?;
        if key.algorithm != head.alg {
            return Err(TokenError::Algorithm);
        }
        // Keys are only ever RS256 or ES256 (jwks::usable), as the header was checked to be.
        let validation = if key.algorithm == Algorithm::RS256 {
            &self.rs256
        } else {
            &self.es256
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, validation)
            .map_err(|e| classify(e.kind()))?;
        if data.claims.sub.trim().is_empty() {
            return Err(TokenError::Claims);
        }
        let identity = Identity {
            subject: data.claims.sub,
            scopes: data
                .claims
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        };
        // Whole seconds, rounded down: the entry never outlives the token.
        let valid_until = (data.claims.exp.max(0.0).floor() as u64).saturating_add(self.leeway_s);
        self.verified
            .insert(digest, identity.clone(), valid_until, now);
        Ok(identity)
    }
}

fn classify(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
            TokenError::Signature
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidSubject => TokenError::Claims,
        // A claim of the wrong type (e.g. `sub` a number) fails deserialisation.
        ErrorKind::Json(_) => TokenError::Claims,
        _ => TokenError::Malformed,
    }
}

/// Whether the token's header says `"alg":"none"` (told apart for the log and the client).
fn token_names_alg_none(token: &str) -> bool {
    use base64::Engine as _;
    let Some(head) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v.get("alg").and_then(|a| a.as_str()).map(str::to_owned))
        .is_some_and(|alg| alg.eq_ignore_ascii_case("none"))
}

/// The token of a single `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Result<&str, TokenError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(TokenError::Missing)?;
    if values.next().is_some() {
        return Err(TokenError::Malformed);
    }
    let text = value.to_str().map_err(|_| TokenError::Malformed)?.trim();
    let (scheme, token) = text.split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Malformed);
    }
    let token = token.trim();
    if token.is_empty() || token.split('.').count() != 3 {
        return Err(TokenError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_one_bearer_header_with_three_parts_is_a_token() {
        assert_eq!(bearer(&headers(&[])), Err(TokenError::Missing));
        assert_eq!(bearer(&headers(&["bearer a.b.c"])), Ok("a.b.c"));
        assert_eq!(
            bearer(&headers(&["Basic dTpw"])),
            Err(TokenError::Malformed)
        );
        assert_eq!(bearer(&headers(&["Bearer"])), Err(TokenError::Malformed));
        assert_eq!(
            bearer(&headers(&["Bearer a.b"])),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            bearer(&headers(&["Bearer a.b.c", "Bearer d.e.f"])),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn alg_none_is_recognised_in_the_header() {
        // {"alg":"none","typ":"JWT"}
        assert!(token_names_alg_none(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30."
        ));
        // {"alg":"HS256","typ":"JWT"}
        assert!(!token_names_alg_none(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x"
        ));
    }
}
