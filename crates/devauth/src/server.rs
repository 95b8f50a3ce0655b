//! `devauth serve`: the dev identity provider over HTTP, for the frontend's dev sign-in and for
//! a gateway whose `AUTH_JWKS` is a URL.
//!
//! - `POST /auth/token` `{"sub": "<user uuid>", "scope": "payments:topup"}` (`scope` optional,
//!   space-separated) → 200 `{"data":{"access_token","token_type":"Bearer","expires_in"}}`;
//!   a `sub` that is not a UUID, or a malformed body → 400 in the SPEC envelope.
//! - `GET /auth/jwks.json` → the key directory's `jwks.json`, read per request (a rotation shows
//!   at once).
//! - `GET /health` and `GET /auth/health` (the latter reachable through the frontend's `/auth/`
//!   proxy) → 200 `{"data":{"status":"ok"}}` while the signing key loads.
//!
//! It grants whatever it is asked for — that is its purpose: a person signs in locally as any
//! user, an operator scope included. Never expose it beyond a dev machine or a test network.
//!
//! The signing key is re-read when the directory's `kid` file changes, so
//! `devauth keys DIR --rotate` takes effect without a restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use platform::error::{ErrorCode, ErrorEnvelope};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Body, Endpoint, EndpointExt, Response, Route, get, handler, post};
use poem_openapi::types::ToJSON as _;
use serde_json::{Value, json};

use crate::{Error, JWKS_FILE, KEY_FILE, KID_FILE, Signer};

/// Largest accepted `POST /auth/token` body: the request is two short strings.
const MAX_BODY_BYTES: usize = 4096;
/// Longest accepted `scope` value.
const MAX_SCOPE_CHARS: usize = 512;

/// What the server signs with and for.
#[derive(Debug, Clone)]
pub struct Config {
    /// The key directory [`crate::generate`] wrote (`signing-key.pem`, `kid`, `jwks.json`).
    pub dir: PathBuf,
    /// The tokens' issuer (`iss`).
    pub issuer: String,
    /// The tokens' audience (`aud`).
    pub audience: String,
    /// How long a token is valid (`expires_in`).
    pub ttl: Duration,
}

struct State {
    config: Config,
    signer: RwLock<Signer>,
}

impl State {
    fn load(config: &Config) -> Result<Signer, Error> {
        let kid_path = config.dir.join(KID_FILE);
        let kid = std::fs::read_to_string(&kid_path).map_err(|e| Error::io(&kid_path, e))?;
        let kid = kid.trim();
        if kid.is_empty() {
            return Err(Error::Corrupt {
                path: kid_path,
                reason: "is empty (run: devauth keys DIR)".into(),
            });
        }
        Signer::from_file(
            &config.dir.join(KEY_FILE),
            Some(kid),
            &config.issuer,
            &config.audience,
        )
    }

    /// The current signer, reloaded first when the `kid` file names another key (a rotation).
    /// A failed reload keeps the previous signer (and logs why): a half-done rotation must not
    /// take the sign-in down.
    fn signer(&self) -> Signer {
        let current = match self.signer.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let on_disk = std::fs::read_to_string(self.config.dir.join(KID_FILE)).unwrap_or_default();
        let on_disk = on_disk.trim();
        if on_disk.is_empty() || on_disk == current.kid() {
            return current;
        }
        match State::load(&self.config) {
            Ok(fresh) => {
                tracing::info!(
                    old_kid = current.kid(),
                    kid = fresh.kid(),
                    "signing key reloaded"
                );
                match self.signer.write() {
                    Ok(mut guard) => *guard = fresh.clone(),
                    Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
                }
                fresh
            }
            Err(e) => {
                tracing::warn!(error = %e, "new signing key cannot be loaded; keeping the old one");
                current
            }
        }
    }
}

/// The application: routes, errors in the SPEC envelope, one log line per request. Fails when
/// the key directory has no usable key (`devauth keys DIR` first).
pub fn app(config: Config) -> Result<impl Endpoint<Output = Response> + 'static, Error> {
    let signer = State::load(&config)?;
    let state = Arc::new(State {
        config,
        signer: RwLock::new(signer),
    });
    Ok(Route::new()
        .at("/auth/token", post(issue_token))
        .at("/auth/jwks.json", get(serve_jwks))
        .at("/health", get(health))
        .at("/auth/health", get(health))
        .data(state)
        .catch_all_error(|err| async move { platform::error::envelope_response(err) })
        .around(|next, req| async move {
            let started = Instant::now();
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let resp = next.call(req).await?;
            tracing::info!(
                method = %method,
                path = %path,
                status = resp.status().as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1e3,
                "request"
            );
            Ok::<Response, poem::Error>(resp)
        }))
}

/// The SPEC envelope (platform's own type) with `status`.
fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let envelope = ErrorEnvelope::new(code, message)
        .to_json()
        .unwrap_or_default();
    json_response(status, &envelope)
}

/// A 400 naming what is wrong with the request.
fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string());
    // Tokens and keys are never cached by a proxy or the browser (RFC 6749 §5.1).
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Whether `scope` is a list of RFC 6749 §3.3 scope tokens (printable ASCII without `"` and `\`).
fn valid_scope(scope: &str) -> bool {
    scope.len() <= MAX_SCOPE_CHARS
        && scope
            .chars()
            .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\'))
}

#[handler]
async fn issue_token(Data(state): Data<&Arc<State>>, body: Body) -> Response {
    let bytes = match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Err(e) => return bad_request(format!("cannot read the body: {e}")),
    };
    let request: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(e) => return bad_request(format!("body is not JSON: {e}")),
    };
    let Some(fields) = request.as_object() else {
        return bad_request("body must be a JSON object {\"sub\": \"<uuid>\", \"scope\": \"...\"}");
    };
    let sub = match fields.get("sub") {
        Some(Value::String(sub)) => match uuid::Uuid::parse_str(sub.trim()) {
            // The hyphenated lowercase form: what the services compare user ids with.
            Ok(user) => user.hyphenated().to_string(),
            Err(_) => return bad_request(format!("sub must be a user's UUID, got {sub:?}")),
        },
        Some(_) => return bad_request("sub must be a string (a user's UUID)"),
        None => return bad_request("sub is required (a user's UUID)"),
    };
    let scope = match fields.get("scope") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(scope)) if valid_scope(scope) => scope.clone(),
        Some(Value::String(_)) => {
            return bad_request(
                "scope must be space-separated scope names of printable ASCII (RFC 6749 §3.3)",
            );
        }
        Some(_) => return bad_request("scope must be a string of space-separated scopes"),
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let signer = state.signer();
    let ttl = state.config.ttl;
    let access_token = signer.token_for(&sub, &scopes, ttl);
    tracing::info!(sub = %sub, scope = %scopes.join(" "), kid = signer.kid(), "token issued");
    json_response(
        StatusCode::OK,
        &json!({"data": {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs(),
        }}),
    )
}

#[handler]
async fn serve_jwks(Data(state): Data<&Arc<State>>) -> Response {
    let path = state.config.dir.join(JWKS_FILE);
    match tokio::fs::read(&path).await {
        Ok(bytes) if serde_json::from_slice::<Value>(&bytes).is_ok() => {
            let mut resp = Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(bytes);
            // Revalidated every time: a verifier must see a rotation's new key promptly.
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        Ok(_) => unavailable(&format!("{} is not valid JSON", path.display())),
        Err(e) => unavailable(&format!("{} cannot be read: {e}", path.display())),
    }
}

fn unavailable(why: &str) -> Response {
    tracing::error!(reason = why, "JWKS not served");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "the JWKS is not available",
    )
}

#[handler]
async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"data": {"status": "ok"}}))
}

/// Serves [`app`] on `host:port` until `shutdown` fires (SIGTERM in `devauth serve`), then
/// drains in-flight requests — the same serving and limits as the services.
pub async fn run(
    host: &str,
    port: u16,
    config: Config,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let endpoint = app(config.clone())?;
    let listener = platform::http::bind(host, port)
        .await
        .map_err(|e| Error::io(std::path::Path::new(&format!("{host}:{port}")), e))?;
    let addr = listener
        .local_addr()
        .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string());
    tracing::info!(
        address = %addr,
        dir = %config.dir.display(),
        issuer = %config.issuer,
        audience = %config.audience,
        "devauth listening"
    );
    platform::http::serve(listener, endpoint, shutdown)
        .await
        .map_err(|e| Error::io(std::path::Path::new(&addr), e))?;
    tracing::info!("devauth stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use poem::test::TestClient;

    fn setup(name: &str) -> (TempDir, Config) {
        let dir = TempDir::new(name);
        crate::generate(&dir, false).unwrap();
        let config = Config {
            dir: dir.to_path_buf(),
            issuer: crate::DEFAULT_ISSUER.into(),
            audience: crate::DEFAULT_AUDIENCE.into(),
            ttl: Duration::from_secs(crate::DEFAULT_TTL_S),
        };
        (dir, config)
    }

    #[tokio::test]
    async fn issues_tokens_for_uuids_and_refuses_the_rest_in_the_envelope() {
        let (_dir, config) = setup("token");
        let cli = TestClient::new(app(config).unwrap());
        let user = uuid::Uuid::new_v4();

        let resp = cli
            .post("/auth/token")
            .body_json(&json!({"sub": user.to_string(), "scope": "payments:topup"}))
            .send()
            .await;
        resp.assert_status_is_ok();
        let body: Value = resp.json().await.value().deserialize();
        assert_eq!(body["data"]["token_type"], "Bearer");
        assert_eq!(body["data"]["expires_in"], 3600);
        let token = body["data"]["access_token"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], user.to_string());
        assert_eq!(claims["scope"], "payments:topup");

        // Without a scope: a plain user token (no scope claim).
        let resp = cli
            .post("/auth/token")
            .body_json(&json!({"sub": user.to_string()}))
            .send()
            .await;
        resp.assert_status_is_ok();

        for bad in [
            json!({"sub": "alice"}),
            json!({"scope": "payments:topup"}),
            json!({"sub": 7}),
            json!({"sub": user.to_string(), "scope": 3}),
            json!({"sub": user.to_string(), "scope": "bad\"scope"}),
            json!(["not", "an", "object"]),
        ] {
            let resp = cli.post("/auth/token").body_json(&bad).send().await;
            resp.assert_status(StatusCode::BAD_REQUEST);
            let body: Value = resp.json().await.value().deserialize();
            assert_eq!(body["error"]["code"], "BAD_REQUEST", "{bad}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        let resp = cli.post("/auth/token").body("{not json").send().await;
        resp.assert_status(StatusCode::BAD_REQUEST);

        // Unknown route and wrong method: the envelope too.
        let resp = cli.get("/auth/nope").send().await;
        resp.assert_status(StatusCode::NOT_FOUND);
        let body: Value = resp.json().await.value().deserialize();
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        cli.get("/auth/token")
            .send()
            .await
            .assert_status(StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn serves_the_jwks_and_health_and_follows_a_rotation() {
        let (dir, config) = setup("jwks");
        let cli = TestClient::new(app(config).unwrap());
        cli.get("/health").send().await.assert_status_is_ok();
        cli.get("/auth/health").send().await.assert_status_is_ok();

        let resp = cli.get("/auth/jwks.json").send().await;
        resp.assert_status_is_ok();
        let doc: Value = resp.json().await.value().deserialize();
        let first_kid = doc["keys"][0]["kid"].as_str().unwrap().to_owned();

        let rotated = crate::generate(&dir, true).unwrap();
        let resp = cli.get("/auth/jwks.json").send().await;
        let doc: Value = resp.json().await.value().deserialize();
        assert_eq!(doc["keys"][0]["kid"], rotated.kid.as_str());
        assert_eq!(doc["keys"][1]["kid"], first_kid.as_str());

        let resp = cli
            .post("/auth/token")
            .body_json(&json!({"sub": uuid::Uuid::new_v4().to_string()}))
            .send()
            .await;
        let body: Value = resp.json().await.value().deserialize();
        let token = body["data"]["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(
            header.kid.as_deref(),
            Some(rotated.kid.as_str()),
            "signs with the new key"
        );
    }

    #[test]
    fn a_directory_without_keys_is_an_error_not_a_server() {
        let config = Config {
            dir: std::env::temp_dir().join(format!("devauth-none-{}", uuid::Uuid::new_v4())),
            issuer: "i".into(),
            audience: "a".into(),
            ttl: Duration::from_secs(1),
        };
        assert!(app(config).is_err());
    }
}
