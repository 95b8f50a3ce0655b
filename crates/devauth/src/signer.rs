//! Signing tokens: the key (ES256 for EC P-256, RS256 for RSA, told apart by the PEM), the
//! `kid` the gateway picks the verification key by, and the claims it checks.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{
    DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_TTL_S, ENV_AUDIENCE, ENV_AUTH, ENV_ISSUER,
    ENV_SIGNING_KEY, ENV_SIGNING_KID, Error,
};

/// Shortest RSA modulus accepted, in bits (RFC 7518 §3.3: 2048 or larger for RS256).
const MIN_RSA_BITS: usize = 2048;

/// Signs tokens for one issuer and audience with one key, named by its `kid`.
///
/// Built once (from a PEM or the environment) and then used for any number of tokens: the key is
/// checked when it is loaded (type, curve, size, and one trial signature), so signing afterwards
/// cannot fail.
#[derive(Clone)]
pub struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    issuer: String,
    audience: String,
    public: Jwk,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for the private key in `pem`: an EC P-256 key (PKCS#8 `BEGIN PRIVATE KEY`, or
    /// SEC1 `BEGIN EC PRIVATE KEY`) signs ES256, an RSA key (PKCS#8, or PKCS#1
    /// `BEGIN RSA PRIVATE KEY`; at least 2048 bits) signs RS256 — the two algorithms the gateway
    /// accepts, so a key that would produce tokens it refuses is rejected here instead (other
    /// curves, Ed25519, public keys, short RSA keys).
    /// `kid` goes into every token's header and must name this key's public half in the JWKS.
    pub fn from_pem(pem: &[u8], kid: &str, issuer: &str, audience: &str) -> Result<Signer, Error> {
        if kid.is_empty() || kid.chars().any(|c| c.is_control()) {
            return Err(Error::Key(format!("kid {kid:?} must be non-empty text")));
        }
        let converted = sec1_to_pkcs8(pem)?;
        let pem = converted.as_deref().map_or(pem, str::as_bytes);
        let (key, alg) = match EncodingKey::from_ec_pem(pem) {
            Ok(key) => (key, Algorithm::ES256),
            Err(ec) => match EncodingKey::from_rsa_pem(pem) {
                Ok(key) => (key, Algorithm::RS256),
                Err(rsa) => {
                    return Err(Error::Key(format!(
                        "not an EC P-256 or RSA private key PEM (as EC: {ec}; as RSA: {rsa})"
                    )));
                }
            },
        };
        // Deriving the public key proves the private one parses for the algorithm: an EC key of
        // another curve fails here for ES256, an RSA public key for RS256.
        let mut public = Jwk::from_encoding_key(&key, alg).map_err(|e| {
            Error::Key(match alg {
                Algorithm::ES256 => format!("an EC key, but not a P-256 private key ({e})"),
                _ => format!("an RSA key, but not a usable private key ({e})"),
            })
        })?;
        if let AlgorithmParameters::RSA(rsa) = &public.algorithm {
            let bits = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map(|n| n.iter().skip_while(|b| **b == 0).count() * 8)
                .unwrap_or(0);
            if bits < MIN_RSA_BITS {
                return Err(Error::Key(format!(
                    "RSA key of {bits} bits; RS256 needs at least {MIN_RSA_BITS}"
                )));
            }
        }
        jsonwebtoken::crypto::sign(b"devauth key check", &key, alg)
            .map_err(|e| Error::Key(format!("cannot sign {alg:?} with this key: {e}")))?;
        public.common.key_id = Some(kid.to_owned());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Signer {
            key,
            alg,
            kid: kid.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            public,
        })
    }

    /// [`Signer::from_pem`] for a PEM file, with the default `kid` (the key's RFC 7638
    /// thumbprint, what [`crate::generate`] writes) when `kid` is `None`.
    pub fn from_file(
        path: &Path,
        kid: Option<&str>,
        issuer: &str,
        audience: &str,
    ) -> Result<Signer, Error> {
        let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        match kid {
            Some(kid) => Signer::from_pem(&pem, kid, issuer, audience),
            None => {
                // Load once under a placeholder to learn the public key, then name it by it.
                let probe = Signer::from_pem(&pem, "probe", issuer, audience)?;
                let kid = probe.thumbprint()?;
                Ok(probe.with_kid(&kid))
            }
        }
    }

    /// The signer the environment describes, as `.stack/env` of a stack started with `AUTH=jwt`
    /// exports it: `None` when `AUTH=off`, or when `AUTH` and `AUTH_SIGNING_KEY` are both unset
    /// (nothing asks for tokens). Otherwise `AUTH_SIGNING_KEY` (path of the private key PEM) is
    /// required; `AUTH_SIGNING_KID` defaults to the key's thumbprint, `AUTH_ISSUER` and
    /// `AUTH_AUDIENCE` to the dev defaults. Lets a test sign tokens for whatever stack it runs
    /// against, and skip the authenticated cases when that stack has authentication off.
    pub fn from_env() -> Result<Option<Signer>, Error> {
        Signer::from_vars(|name| match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config {
                name,
                reason: "is not valid UTF-8".into(),
            }),
        })
    }

    /// [`Signer::from_env`] over any source of variables (tests pass a map: changing the
    /// process environment is unsafe while other threads read it).
    fn from_vars(
        get: impl Fn(&'static str) -> Result<Option<String>, Error>,
    ) -> Result<Option<Signer>, Error> {
        let var = |name: &'static str| -> Result<Option<String>, Error> {
            Ok(get(name)?
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()))
        };
        let auth = var(ENV_AUTH)?;
        let key = var(ENV_SIGNING_KEY)?;
        match auth.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("off") => return Ok(None),
            Some("jwt") => {}
            None if key.is_none() => return Ok(None),
            None => {}
            Some(other) => {
                return Err(Error::Config {
                    name: ENV_AUTH,
                    reason: format!("must be jwt or off, not {other:?}"),
                });
            }
        }
        let Some(key) = key else {
            return Err(Error::Config {
                name: ENV_SIGNING_KEY,
                reason: "is required with AUTH=jwt (path of the private key PEM)".into(),
            });
        };
        let issuer = var(ENV_ISSUER)?.unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
        let audience = var(ENV_AUDIENCE)?.unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
        let kid = var(ENV_SIGNING_KID)?;
        Signer::from_file(Path::new(&key), kid.as_deref(), &issuer, &audience).map(Some)
    }

    /// The same key under another `kid`: a token whose `kid` the JWKS does not list must be
    /// refused even though its signature is good (a negative test), and [`Signer::from_file`]
    /// names a key by its thumbprint.
    pub fn with_kid(&self, kid: &str) -> Signer {
        let mut signer = self.clone();
        kid.clone_into(&mut signer.kid);
        signer.public.common.key_id = Some(kid.to_owned());
        signer
    }

    /// The same key for another issuer and audience (a negative test's wrong-issuer token).
    pub fn with_issuer_audience(&self, issuer: &str, audience: &str) -> Signer {
        let mut signer = self.clone();
        issuer.clone_into(&mut signer.issuer);
        audience.clone_into(&mut signer.audience);
        signer
    }

    /// A token for `sub` with `scopes`, valid for an hour from now ([`crate::DEFAULT_TTL_S`]).
    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        self.token_for(sub, scopes, Duration::from_secs(DEFAULT_TTL_S))
    }

    /// A token for `sub` with `scopes`, valid for `ttl` from now (`nbf` = `iat` = now): what an
    /// identity provider issues, with a fresh `jti`.
    pub fn token_for(&self, sub: &str, scopes: &[&str], ttl: Duration) -> String {
        self.sign_raw(self.header(), &self.claims(sub, scopes, ttl))
    }

    /// The header [`Signer::token`] uses (`alg`, `typ: JWT`, `kid`), for a test to change one
    /// field and sign with [`Signer::sign_raw`].
    pub fn header(&self) -> Header {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header
    }

    /// The claims [`Signer::token_for`] signs, as JSON, for a test to change one (an `exp` in
    /// the past, another `aud`, no `sub`) and sign with [`Signer::sign_raw`].
    pub fn claims(&self, sub: &str, scopes: &[&str], ttl: Duration) -> Value {
        let now = unix_now();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl.as_secs()),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if !scopes.is_empty()
            && let Some(map) = claims.as_object_mut()
        {
            map.insert("scope".into(), Value::String(scopes.join(" ")));
        }
        claims
    }

    /// `header` and `claims` signed with this key as they are, nothing checked or added: for
    /// negative tests (expired, wrong audience, unknown `kid`, a header whose `alg` does not
    /// match the key — the signature is always made with this key's own algorithm, so
    /// `alg: HS256` over an ES256 signature is a token the gateway must refuse).
    pub fn sign_raw(&self, header: Header, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            encode_part(&serde_json::to_value(&header).unwrap_or(Value::Null)),
            encode_part(claims)
        );
        // The key was proven to sign `self.alg` when it was loaded; nothing else can fail.
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, self.alg)
            .unwrap_or_else(|e| unreachable!("a key checked at load failed to sign: {e}"));
        format!("{message}.{signature}")
    }

    /// The issuer (`iss`) of this signer's tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience (`aud`) of this signer's tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The `kid` in this signer's token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm: ES256 (EC P-256 key) or RS256 (RSA key).
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public half as a JWK (with `kid`, `alg`, `use: sig`): what a JWKS must contain for
    /// the gateway to accept this signer's tokens, e.g. a test's own JWKS for an RSA key.
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    /// The public key's RFC 7638 thumbprint (base64url SHA-256 of the canonical JWK): a `kid`
    /// that names the key itself, so the same key always gets the same `kid`.
    pub fn thumbprint(&self) -> Result<String, Error> {
        self.public
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .map_err(|e| Error::Key(format!("thumbprint: {e}")))
    }
}

/// An EC key in SEC1 form (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey` writes) as
/// PKCS#8, the form jsonwebtoken reads; `None` for anything else (left to the PKCS#8/RSA paths).
fn sec1_to_pkcs8(pem: &[u8]) -> Result<Option<String>, Error> {
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let Ok(text) = std::str::from_utf8(pem) else {
        return Ok(None);
    };
    if !text.contains("-----BEGIN EC PRIVATE KEY-----") {
        return Ok(None);
    }
    let secret = p256::SecretKey::from_sec1_pem(text)
        .map_err(|_| Error::Key("an EC private key (SEC1), but not on P-256".into()))?;
    let pkcs8 = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Key(format!("cannot re-encode the SEC1 key as PKCS#8: {e}")))?;
    Ok(Some(pkcs8.to_string()))
}

/// A token with `alg: none` and no signature (RFC 7519 §6, an "unsecured JWT"): the gateway must
/// refuse it whatever the claims say; for negative tests.
pub fn unsecured(claims: &Value) -> String {
    format!(
        "{}.{}.",
        encode_part(&json!({"alg": "none", "typ": "JWT"})),
        encode_part(claims)
    )
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&'static str, &str)]) -> Result<Option<Signer>, Error> {
        let map: HashMap<&'static str, String> =
            vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        Signer::from_vars(|name| Ok(map.get(name).cloned()))
    }

    #[test]
    fn the_environment_decides_whether_and_how_to_sign() {
        let dir = crate::testutil::TempDir::new("env");
        let files = crate::generate(&dir, false).unwrap();
        let key = files.signing_key.to_str().unwrap();

        // Off, or nothing configured: no signer, no error.
        assert!(
            from(&[("AUTH", "off"), ("AUTH_SIGNING_KEY", key)])
                .unwrap()
                .is_none()
        );
        assert!(from(&[]).unwrap().is_none());
        assert!(from(&[("AUTH", "")]).unwrap().is_none());
        // jwt without a key, or a bad mode: an error naming the variable.
        let err = from(&[("AUTH", "jwt")]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    name: "AUTH_SIGNING_KEY",
                    ..
                }
            ),
            "{err}"
        );
        let err = from(&[("AUTH", "maybe"), ("AUTH_SIGNING_KEY", key)]).unwrap_err();
        assert!(matches!(err, Error::Config { name: "AUTH", .. }), "{err}");
        let err = from(&[
            ("AUTH", "jwt"),
            ("AUTH_SIGNING_KEY", "/nonexistent/key.pem"),
        ])
        .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");

        // Defaults: dev issuer and audience, the thumbprint as kid.
        let signer = from(&[("AUTH", "JWT"), ("AUTH_SIGNING_KEY", key)])
            .unwrap()
            .unwrap();
        assert_eq!(signer.issuer(), crate::DEFAULT_ISSUER);
        assert_eq!(signer.audience(), crate::DEFAULT_AUDIENCE);
        assert_eq!(signer.kid(), files.kid);
        // A key alone (AUTH unset) signs too; explicit values win.
        let signer = from(&[
            ("AUTH_SIGNING_KEY", key),
            ("AUTH_SIGNING_KID", "my-kid"),
            ("AUTH_ISSUER", "iss-x"),
            ("AUTH_AUDIENCE", "aud-x"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (signer.kid(), signer.issuer(), signer.audience()),
            ("my-kid", "iss-x", "aud-x")
        );
        let header = jsonwebtoken::decode_header(signer.token("u", &[])).unwrap();
        assert_eq!(header.kid.as_deref(), Some("my-kid"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn the_debug_output_names_the_key_but_never_shows_it() {
        let dir = crate::testutil::TempDir::new("dbg");
        let files = crate::generate(&dir, false).unwrap();
        let pem = std::fs::read_to_string(&files.signing_key).unwrap();
        let signer = Signer::from_pem(pem.as_bytes(), "k1", "i", "a").unwrap();
        let shown = format!("{signer:?}");
        assert!(shown.contains("k1"), "{shown}");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!shown.contains(&body[..16]), "{shown}");
    }
}
