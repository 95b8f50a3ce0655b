//! Who is calling: the identity the gateway verified, carried to a service on signed internal
//! headers, and the rules the services apply to it.
//!
//! The gateway checks the client's bearer token (JWT) and forwards the verified subject and
//! scopes on `x-auth-*` headers, which it first strips from every client request. A service must
//! not believe such headers from anyone else, so the gateway signs them with HMAC-SHA256 under a
//! secret the two share (`AUTH_INTERNAL_SECRET`), binding the signature to the request's method,
//! path and query, and to the moment it was issued (accepted for [`MAX_SKEW`]). A client that
//! reaches a service directly, or replays a captured header on another request, gets a 401.
//!
//! Why a shared secret and not mTLS: it works over the plain HTTP the services speak (no TLS
//! stack, certificates or rotation to run locally), through any number of instances, and it
//! identifies each request rather than a connection. mTLS is the production upgrade for
//! transport encryption; the signature check stays useful behind it.
//!
//! Invariants: with `AUTH=jwt` an operation runs only for a [`Caller::User`] whose headers
//! verified; [`Caller::act_for`] lets a user act only for itself; a top-up needs
//! [`TOPUP_SCOPE`]. With `AUTH=off` every caller is [`Caller::Anyone`] (the seed's
//! walk-through, `make up`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use uuid::Uuid;

use crate::config::{ConfigError, string_or};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};

/// The verified subject (`sub` of the token): a user's UUID, or an operator's name.
pub const SUBJECT_HEADER: HeaderName = HeaderName::from_static("x-auth-subject");
/// The verified scopes, space-separated (OAuth 2.0 `scope` syntax).
pub const SCOPES_HEADER: HeaderName = HeaderName::from_static("x-auth-scopes");
/// When the gateway signed the headers, in Unix seconds.
pub const ISSUED_HEADER: HeaderName = HeaderName::from_static("x-auth-issued");
/// HMAC-SHA256 over the identity and the request, lowercase hex.
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-auth-signature");
/// Every header with this prefix is internal: the gateway drops them all from client requests.
pub const INTERNAL_PREFIX: &str = "x-auth-";

/// The operator scope that may add money: top-ups and non-zero opening balances.
pub const TOPUP_SCOPE: &str = "payments:topup";

/// How far the signing time may be from the service's clock, either way, in seconds: long enough
/// for clock drift between hosts, short enough that a captured header is soon worthless.
pub const MAX_SKEW: u64 = 60;

/// Shortest accepted `AUTH_INTERNAL_SECRET`, in bytes: HMAC-SHA256's own block of entropy.
pub const MIN_SECRET_BYTES: usize = 32;

/// The name the OpenAPI document gives the bearer security scheme.
pub const SCHEME_NAME: &str = "bearerAuth";

/// `AUTH`: whether clients must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Bearer tokens checked at the gateway; the services trust only signed internal headers.
    Jwt,
    /// No authentication at all: for the local walk-through only.
    Off,
}

impl FromStr for AuthMode {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "jwt" => Ok(AuthMode::Jwt),
            "off" => Ok(AuthMode::Off),
            other => Err(format!("must be jwt or off, not {other:?}")),
        }
    }
}

/// The secret the gateway and the services share; never printed.
#[derive(Clone)]
pub struct InternalSecret(Arc<[u8]>);

impl InternalSecret {
    /// The secret from its text; at least [`MIN_SECRET_BYTES`] bytes.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            ));
        }
        Ok(InternalSecret(Arc::from(raw.as_bytes())))
    }

    /// Reads `AUTH_INTERNAL_SECRET`, which `AUTH=jwt` requires.
    pub fn from_env() -> Result<Self, ConfigError> {
        let raw = string_or("AUTH_INTERNAL_SECRET", "");
        InternalSecret::parse(&raw).map_err(|reason| ConfigError {
            name: "AUTH_INTERNAL_SECRET".into(),
            value: if raw.is_empty() {
                String::new()
            } else {
                "<redacted>".into()
            },
            reason: if raw.is_empty() {
                "is required with AUTH=jwt".into()
            } else {
                reason
            },
        })
    }

    fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        // HMAC takes keys of any length; the constructor cannot fail for it.
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }
}

impl fmt::Debug for InternalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InternalSecret(<redacted>)")
    }
}

/// A verified caller: the token's subject and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`: a user's UUID for user tokens; operators may carry any name.
    pub subject: String,
    /// The granted scopes, as the token listed them.
    pub scopes: Vec<String>,
}

impl Identity {
    /// The user this identity is, when its subject is a UUID.
    pub fn user(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.subject).ok()
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The MAC over one request's identity, ready to finalise or to verify against. Fields are
/// separated by newlines, which none of them may contain (header values cannot), so no two
/// inputs sign alike.
fn mac_over(
    secret: &InternalSecret,
    subject: &str,
    scopes: &str,
    issued: u64,
    method: &Method,
    path_and_query: &str,
) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = secret.mac();
    for part in [
        "v1",
        subject,
        scopes,
        &issued.to_string(),
        method.as_str(),
        path_and_query,
    ] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac
}

/// Puts `identity` on `headers` for the request `method path_and_query`, signed at `issued`
/// (Unix seconds). A subject or scope that is not a valid header value is left out, so the
/// service answers 401 rather than act for a mangled identity.
pub fn attach(
    headers: &mut HeaderMap,
    secret: &InternalSecret,
    identity: &Identity,
    method: &Method,
    path_and_query: &str,
    issued: u64,
) {
    let scopes = identity.scopes.join(" ");
    let sig = hex::encode(
        mac_over(
            secret,
            &identity.subject,
            &scopes,
            issued,
            method,
            path_and_query,
        )
        .finalize()
        .into_bytes(),
    );
    let values = (
        HeaderValue::from_str(&identity.subject),
        HeaderValue::from_str(&scopes),
        HeaderValue::from_str(&issued.to_string()),
        HeaderValue::from_str(&sig),
    );
    if let (Ok(subject), Ok(scopes), Ok(issued), Ok(sig)) = values {
        headers.insert(SUBJECT_HEADER, subject);
        headers.insert(SCOPES_HEADER, scopes);
        headers.insert(ISSUED_HEADER, issued);
        headers.insert(SIGNATURE_HEADER, sig);
    }
}

/// Drops every internal header (`x-auth-*`) a client sent, so only the gateway's own can reach
/// a service.
pub fn strip_internal(headers: &mut HeaderMap) {
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(INTERNAL_PREFIX))
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
}

/// Why a service refused the internal headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No identity at all: the request did not come through the gateway.
    #[error("authentication required")]
    Missing,
    /// Present but unreadable (sent twice, not text, not a number).
    #[error("malformed internal identity")]
    Malformed,
    /// The signature does not match: forged, or for another request.
    #[error("internal identity signature mismatch")]
    BadSignature,
    /// Signed too long ago (or in the future): a replay, or clocks far apart.
    #[error("internal identity expired")]
    Stale,
}

/// The single value of header `name`, if it was sent exactly once as text.
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, Rejection> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::Malformed);
    }
    first.to_str().map(Some).map_err(|_| Rejection::Malformed)
}

/// The identity the gateway signed for the request `method path_and_query`, checked at `now`.
pub fn verify(
    headers: &HeaderMap,
    secret: &InternalSecret,
    method: &Method,
    path_and_query: &str,
    now: u64,
) -> Result<Identity, Rejection> {
    let subject = single(headers, &SUBJECT_HEADER)?;
    let scopes = single(headers, &SCOPES_HEADER)?;
    let issued = single(headers, &ISSUED_HEADER)?;
    let sig = single(headers, &SIGNATURE_HEADER)?;
    let (Some(subject), Some(issued), Some(sig)) = (subject, issued, sig) else {
        return Err(Rejection::Missing);
    };
    let scopes = scopes.unwrap_or("");
    let issued: u64 = issued.parse().map_err(|_| Rejection::Malformed)?;
    let sig = hex::decode(sig).map_err(|_| Rejection::Malformed)?;
    // `verify_slice` compares in constant time: a forger learns nothing from how long it took.
    mac_over(secret, subject, scopes, issued, method, path_and_query)
        .verify_slice(&sig)
        .map_err(|_| Rejection::BadSignature)?;
    if issued.abs_diff(now) > MAX_SKEW {
        return Err(Rejection::Stale);
    }
    if subject.is_empty() {
        return Err(Rejection::Malformed);
    }
    Ok(Identity {
        subject: subject.to_owned(),
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
    })
}

/// How a service authenticates its callers (`AUTH`, `AUTH_INTERNAL_SECRET`).
#[derive(Debug, Clone)]
pub enum ServiceAuth {
    /// `AUTH=off`: everyone may do everything.
    Off,
    /// `AUTH=jwt`: only requests with the gateway's signed identity.
    Internal(InternalSecret),
}

impl ServiceAuth {
    /// Reads `AUTH` (default `jwt`) and, for it, `AUTH_INTERNAL_SECRET`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match crate::config::var_or("AUTH", AuthMode::Jwt)? {
            AuthMode::Off => Ok(ServiceAuth::Off),
            AuthMode::Jwt => Ok(ServiceAuth::Internal(InternalSecret::from_env()?)),
        }
    }

    /// The mode, for logs.
    pub fn mode(&self) -> AuthMode {
        match self {
            ServiceAuth::Off => AuthMode::Off,
            ServiceAuth::Internal(_) => AuthMode::Jwt,
        }
    }
}

/// The `WWW-Authenticate` value of a 401 (RFC 6750 §3): `error` only when a token was sent.
pub fn challenge(error: Option<&str>) -> HeaderValue {
    let value = match error {
        Some(description) => format!(
            "Bearer realm=\"orders-payments\", error=\"invalid_token\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ),
        None => "Bearer realm=\"orders-payments\"".to_owned(),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// The enveloped 401 with its challenge; `error` describes a bad token (absent: none sent).
pub fn unauthorized(message: &str, error: Option<&str>) -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        Json(ErrorEnvelope::new(ErrorCode::Unauthorized, message)).into_response(),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge(error));
    resp
}

/// Who an operation runs for; the extractor of every operation (the bearer security scheme of
/// the OpenAPI document).
#[derive(Debug, Clone)]
pub enum Caller {
    /// `AUTH=off`: no identity, no restriction.
    Anyone,
    /// A verified identity.
    User(Identity),
}

impl Caller {
    /// 403 unless the caller is `user` (or authentication is off).
    pub fn act_for(&self, user: Uuid) -> Result<(), ApiError> {
        if self.is(user) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user_id {user} is not the authenticated user"
            )))
        }
    }

    /// Whether the caller is `user` (always, with authentication off): what a caller who is not
    /// the owner may not even learn exists (another user's order answers 404).
    pub fn is(&self, user: Uuid) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::User(identity) => identity.user() == Some(user),
        }
    }

    /// Whether the caller holds `scope` (always, with authentication off).
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::User(identity) => identity.has_scope(scope),
        }
    }

    /// 403 unless the caller holds `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("requires the {scope} scope")))
        }
    }

    /// The granted scopes, for the audit log (none with authentication off).
    pub fn scopes(&self) -> &[String] {
        match self {
            Caller::Anyone => &[],
            Caller::User(identity) => &identity.scopes,
        }
    }

    /// The subject, for the audit log (`None` with authentication off).
    pub fn subject(&self) -> Option<&str> {
        match self {
            Caller::Anyone => None,
            Caller::User(identity) => Some(&identity.subject),
        }
    }
}

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SCHEME_NAME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "A JWT (RS256 or ES256) from the identity provider, checked by the gateway: \
                     issuer, audience, expiry and signature against its JWKS. User tokens carry \
                     the user's UUID as `sub`; top-ups need the `payments:topup` scope. Not \
                     required when the system runs with AUTH=off.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME_NAME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let Some(auth) = request.data::<ServiceAuth>() else {
            // A service wired without its auth settings must fail closed, loudly.
            tracing::error!("no ServiceAuth in the request data: refusing the request");
            return Err(poem::Error::from_response(unauthorized(
                "authentication required",
                None,
            )));
        };
        let ServiceAuth::Internal(secret) = auth else {
            return Ok(Caller::Anyone);
        };
        let path_and_query = request
            .original_uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        match verify(
            request.headers(),
            secret,
            request.method(),
            path_and_query,
            now_unix(),
        ) {
            Ok(identity) => Ok(Caller::User(identity)),
            Err(rejection) => {
                tracing::info!(reason = %rejection, "request without a valid internal identity");
                Err(poem::Error::from_response(unauthorized(
                    "authentication required: send a bearer token through the gateway",
                    None,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> InternalSecret {
        InternalSecret::parse("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn identity() -> Identity {
        Identity {
            subject: "7f0c3f5e-2a54-4a61-9d4f-1a0c8d1f2b3c".into(),
            scopes: vec!["payments:topup".into(), "orders:read".into()],
        }
    }

    fn signed(issued: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        attach(
            &mut headers,
            &secret(),
            &identity(),
            &Method::POST,
            "/accounts/topup",
            issued,
        );
        headers
    }

    #[test]
    fn a_signed_identity_verifies_for_its_own_request_only() {
        let headers = signed(1_000);
        let got = verify(&headers, &secret(), &Method::POST, "/accounts/topup", 1_030).unwrap();
        assert_eq!(got, identity());
        assert_eq!(
            verify(&headers, &secret(), &Method::GET, "/accounts/topup", 1_030),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            verify(&headers, &secret(), &Method::POST, "/accounts", 1_030),
            Err(Rejection::BadSignature)
        );
        let other = InternalSecret::parse("another secret, also 32 bytes long").unwrap();
        assert_eq!(
            verify(&headers, &other, &Method::POST, "/accounts/topup", 1_030),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn a_changed_subject_or_scope_breaks_the_signature() {
        let mut headers = signed(1_000);
        headers.insert(
            SUBJECT_HEADER,
            HeaderValue::from_static("00000000-0000-0000-0000-000000000001"),
        );
        assert_eq!(
            verify(&headers, &secret(), &Method::POST, "/accounts/topup", 1_000),
            Err(Rejection::BadSignature)
        );
        let mut headers = signed(1_000);
        headers.insert(SCOPES_HEADER, HeaderValue::from_static("payments:topup"));
        assert_eq!(
            verify(&headers, &secret(), &Method::POST, "/accounts/topup", 1_000),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn old_or_future_signatures_are_stale() {
        let headers = signed(1_000);
        let at = |now| verify(&headers, &secret(), &Method::POST, "/accounts/topup", now);
        assert!(at(1_000 + MAX_SKEW).is_ok());
        assert_eq!(at(1_001 + MAX_SKEW), Err(Rejection::Stale));
        assert_eq!(at(999 - MAX_SKEW), Err(Rejection::Stale));
    }

    #[test]
    fn missing_or_repeated_headers_are_refused() {
        let empty = HeaderMap::new();
        assert_eq!(
            verify(&empty, &secret(), &Method::GET, "/", 0),
            Err(Rejection::Missing)
        );
        let mut twice = signed(1_000);
        twice.append(SUBJECT_HEADER, HeaderValue::from_static("x"));
        assert_eq!(
            verify(&twice, &secret(), &Method::POST, "/accounts/topup", 1_000),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn strip_removes_every_internal_header_and_nothing_else() {
        let mut headers = signed(1_000);
        headers.insert("x-auth-anything", HeaderValue::from_static("1"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        strip_internal(&mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["authorization"]);
    }

    #[test]
    fn short_secrets_and_unknown_modes_are_refused() {
        assert!(InternalSecret::parse("short").is_err());
        assert_eq!("JWT".parse::<AuthMode>(), Ok(AuthMode::Jwt));
        assert_eq!(" off ".parse::<AuthMode>(), Ok(AuthMode::Off));
        assert!("none".parse::<AuthMode>().is_err());
        assert!(!format!("{:?}", secret()).contains("0123"));
    }

    #[test]
    fn callers_act_only_for_themselves_and_by_scope() {
        let user = identity().user().unwrap();
        let caller = Caller::User(Identity {
            subject: user.to_string(),
            scopes: vec![],
        });
        assert!(caller.act_for(user).is_ok());
        assert!(caller.act_for(Uuid::nil()).is_err());
        assert!(caller.require(TOPUP_SCOPE).is_err());
        assert!(Caller::Anyone.act_for(Uuid::nil()).is_ok());
        assert!(Caller::Anyone.require(TOPUP_SCOPE).is_ok());
        let operator = Caller::User(Identity {
            subject: "ops-console".into(),
            scopes: vec![TOPUP_SCOPE.into()],
        });
        assert!(operator.require(TOPUP_SCOPE).is_ok());
        assert!(!operator.is(user));
    }
}
