//! The identity provider's public keys (a JWKS), cached and refreshed.
//!
//! Invariants: a key is usable for exactly one algorithm — RS256 for an RSA key, ES256 for a
//! P-256 key — so a token cannot choose how its signature is checked (no HS/RS confusion, no
//! `none`); keys are found by `kid`, and a `kid` the cache does not know triggers at most one
//! reload per [`MIN_RELOAD_GAP`], so a rotated-in key is picked up at once while a flood of
//! made-up `kid`s cannot hammer the provider. A failed reload keeps the keys already loaded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

/// The least time between two reloads caused by unknown `kid`s.
pub const MIN_RELOAD_GAP: Duration = Duration::from_secs(10);

/// Where the JWKS comes from (`AUTH_JWKS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A file, re-read on reload (a secret mount or the dev stack's `.stack/auth/jwks.json`).
    File(PathBuf),
    /// An `http://` URL (the provider's `jwks_uri`). This build's HTTP client has no TLS, so
    /// `https://` is refused at start-up rather than failing at the first token.
    Url(String),
}

impl FromStr for JwksSource {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is required with AUTH=jwt (a file path or an http:// URL)".into());
        }
        if raw.starts_with("https://") {
            return Err(
                "https is not supported by this build's HTTP client: use a file (e.g. a mounted \
                 secret) or an http:// URL on a trusted network"
                    .into(),
            );
        }
        if raw.starts_with("http://") {
            reqwest::Url::parse(raw).map_err(|e| e.to_string())?;
            return Ok(JwksSource::Url(raw.to_owned()));
        }
        Ok(JwksSource::File(PathBuf::from(raw)))
    }
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url) => f.write_str(url),
        }
    }
}

/// Why the key set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("cannot read the JWKS file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The URL did not answer with a document.
    #[error("cannot fetch the JWKS from {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// The transport or status error.
        #[source]
        source: reqwest::Error,
    },
    /// Not a JWKS (`{"keys": [...]}`) or no usable key in it.
    #[error("invalid JWKS: {0}")]
    Invalid(String),
}

/// One usable public key.
#[derive(Clone)]
pub struct Key {
    /// The only algorithm this key verifies.
    pub algorithm: Algorithm,
    /// The key itself.
    pub decoding: DecodingKey,
}

/// The keys of one load, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    /// The key to use for a token without `kid`: only when the set holds exactly one key.
    only: Option<Key>,
}

impl KeySet {
    /// Parses a JWKS document; keys that are not RS256/ES256 signing keys are skipped (logged),
    /// and a set without any usable key is an error.
    pub fn parse(text: &[u8]) -> Result<KeySet, JwksError> {
        let doc: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| JwksError::Invalid(e.to_string()))?;
        let keys = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| JwksError::Invalid("no \"keys\" array".into()))?;
        let mut by_kid = HashMap::new();
        let mut unnamed = Vec::new();
        for raw in keys {
            let jwk: Jwk = match serde_json::from_value(raw.clone()) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS key skipped: not a JWK");
                    continue;
                }
            };
            match usable(&jwk) {
                Ok(key) => match jwk.common.key_id {
                    Some(kid) => {
                        by_kid.insert(kid, key);
                    }
                    None => unnamed.push(key),
                },
                Err(reason) => {
                    tracing::warn!(kid = ?jwk.common.key_id, reason, "JWKS key skipped");
                }
            }
        }
        let total = by_kid.len() + unnamed.len();
        if total == 0 {
            return Err(JwksError::Invalid("no RS256 or ES256 signing key".into()));
        }
        let only = if total == 1 {
            unnamed.pop().or_else(|| by_kid.values().next().cloned())
        } else {
            None
        };
        Ok(KeySet { by_kid, only })
    }

    /// The key for a token's `kid` (or for a token without one, the set's only key).
    pub fn get(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => self.only.as_ref(),
        }
    }

    /// How many keys have a `kid`.
    pub fn len(&self) -> usize {
        self.by_kid.len() + usize::from(self.by_kid.is_empty() && self.only.is_some())
    }

    /// Whether the set is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The one algorithm `jwk` may verify, or why it is not usable for tokens.
fn usable(jwk: &Jwk) -> Result<Key, &'static str> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err("not a signature key (use)");
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return Err("only RSA and P-256 keys are accepted"),
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_ok {
        return Err("alg is not RS256 or ES256, or does not match the key type");
    }
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "key parameters are invalid")?;
    Ok(Key {
        algorithm,
        decoding,
    })
}

/// The cached key set and how to reload it.
pub struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Serialises reloads and remembers the last one caused by an unknown `kid`.
    reload: Mutex<Option<Instant>>,
}

impl Jwks {
    /// Loads the keys once; start-up fails if that does not work (better than 401 for all).
    pub async fn load(source: JwksSource, client: reqwest::Client) -> Result<Jwks, JwksError> {
        let keys = fetch(&source, &client).await?;
        tracing::info!(source = %source, keys = keys.len(), "JWKS loaded");
        Ok(Jwks {
            source,
            client,
            keys: RwLock::new(Arc::new(keys)),
            reload: Mutex::new(None),
        })
    }

    /// The current key set.
    pub fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |k| k.clone())
    }

    /// The key for `kid`, reloading once if it is unknown and the last such reload is older
    /// than [`MIN_RELOAD_GAP`] (a key the provider just rotated in).
    pub async fn key(&self, kid: Option<&str>) -> Option<Key> {
        if let Some(key) = self.current().get(kid) {
            return Some(key.clone());
        }
        let mut last = self.reload.lock().await;
        // Another request may have reloaded while this one waited for the lock.
        if let Some(key) = self.current().get(kid) {
            return Some(key.clone());
        }
        if last.is_some_and(|at| at.elapsed() < MIN_RELOAD_GAP) {
            return None;
        }
        *last = Some(Instant::now());
        self.reload_now().await;
        self.current().get(kid).cloned()
    }

    /// Reloads the key set; a failure keeps the old one and is logged.
    pub async fn reload_now(&self) {
        match fetch(&self.source, &self.client).await {
            Ok(keys) => {
                let count = keys.len();
                match self.keys.write() {
                    Ok(mut current) => *current = Arc::new(keys),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
                }
                tracing::debug!(source = %self.source, keys = count, "JWKS reloaded");
            }
            Err(e) => tracing::warn!(
                error = %platform::error::error_chain(&e),
                "JWKS reload failed, keeping the keys loaded before"
            ),
        }
    }

    /// Reloads every `every` until `shutdown`, so a key the provider removed stops verifying.
    pub async fn refresh_every(
        self: Arc<Self>,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => self.reload_now().await,
            }
        }
    }
}

async fn fetch(source: &JwksSource, client: &reqwest::Client) -> Result<KeySet, JwksError> {
    let bytes = match source {
        JwksSource::File(path) => {
            tokio::fs::read(path)
                .await
                .map_err(|source| JwksError::Read {
                    path: path.clone(),
                    source,
                })?
        }
        JwksSource::Url(url) => {
            let fetch_err = |source| JwksError::Fetch {
                url: url.clone(),
                source,
            };
            client
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(fetch_err)?
                .bytes()
                .await
                .map_err(fetch_err)?
                .to_vec()
        }
    };
    KeySet::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A P-256 public key (RFC 7515 appendix A.3's example key).
    const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec-1",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn set(keys: &[&str]) -> Result<KeySet, JwksError> {
        KeySet::parse(format!("{{\"keys\":[{}]}}", keys.join(",")).as_bytes())
    }

    #[test]
    fn an_ec_key_verifies_es256_only_and_is_found_by_kid() {
        let keys = set(&[EC_KEY]).unwrap();
        assert_eq!(keys.get(Some("ec-1")).unwrap().algorithm, Algorithm::ES256);
        assert!(keys.get(Some("other")).is_none());
        // One key: a token without kid may use it.
        assert!(keys.get(None).is_some());
    }

    #[test]
    fn symmetric_and_mismatched_keys_are_skipped() {
        let hmac = r#"{"kty":"oct","kid":"h","k":"c2VjcmV0"}"#;
        let lying = EC_KEY.replace("\"kid\":\"ec-1\"", "\"kid\":\"ec-2\",\"alg\":\"RS256\"");
        let encrypting = EC_KEY.replace("\"kid\":\"ec-1\"", "\"kid\":\"ec-3\",\"use\":\"enc\"");
        let keys = set(&[hmac, &lying, &encrypting, EC_KEY]).unwrap();
        assert!(keys.get(Some("h")).is_none());
        assert!(keys.get(Some("ec-2")).is_none());
        assert!(keys.get(Some("ec-3")).is_none());
        assert!(keys.get(Some("ec-1")).is_some());
        assert!(set(&[hmac]).is_err());
        assert!(KeySet::parse(b"{}").is_err());
        assert!(KeySet::parse(b"not json").is_err());
    }

    #[test]
    fn with_several_keys_a_token_must_name_its_kid() {
        let second = EC_KEY.replace("ec-1", "ec-2");
        let keys = set(&[EC_KEY, &second]).unwrap();
        assert!(keys.get(None).is_none());
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn sources_are_files_or_plain_http_urls() {
        assert_eq!(
            "/run/jwks.json".parse::<JwksSource>(),
            Ok(JwksSource::File("/run/jwks.json".into()))
        );
        assert!(matches!(
            "http://idp:8084/jwks.json".parse::<JwksSource>(),
            Ok(JwksSource::Url(_))
        ));
        assert!("https://idp/jwks.json".parse::<JwksSource>().is_err());
        assert!("".parse::<JwksSource>().is_err());
    }
}
