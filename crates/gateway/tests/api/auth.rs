//! Authentication and rate limits at the gateway, in front of echoing fake upstreams: every kind
//! of bad token is a 401 that never reaches a service; a good one reaches it as a signed identity
//! without the token; a client's own `x-auth-*` headers never get through; the JWKS is found by
//! `kid`, reloaded for a rotated-in key, read from a file or a URL; limits answer 429 and recover.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use devauth::Signer;
use gateway::auth::jwks::JwksSource;
use gateway::auth::{AuthSettings, JwtSettings, RateLimits};
use gateway::ratelimit::{Limit, Rate};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::auth::InternalSecret;
use poem::http::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestGateway, fake_upstream, spawn_gateway_with};

const ISSUER: &str = "test-issuer";
const AUDIENCE: &str = "orders-payments";
const SECRET: &str = "a test secret that is long enough for HMAC";

/// A fresh directory for one test's keys.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gateway-auth-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An ES256 signer from keys generated into `dir` (its `jwks.json` lists it).
fn es256(dir: &std::path::Path) -> Signer {
    let files = devauth::generate(dir, false).unwrap();
    Signer::from_file(&files.signing_key, Some(&files.kid), ISSUER, AUDIENCE).unwrap()
}

/// An RS256 signer from a 2048-bit key made by openssl.
fn rs256(dir: &std::path::Path) -> Signer {
    let pem = dir.join("rsa.pem");
    devauth::generate_rsa(&pem).unwrap();
    Signer::from_file(&pem, Some("rsa-1"), ISSUER, AUDIENCE).unwrap()
}

fn write_jwks(path: &std::path::Path, signers: &[&Signer]) {
    std::fs::write(path, devauth::jwks(signers).to_string()).unwrap();
}

fn jwt(jwks: JwksSource) -> AuthSettings {
    AuthSettings::Jwt(JwtSettings {
        jwks,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway_s: 30,
        refresh: Duration::from_secs(300),
        secret: InternalSecret::parse(SECRET).unwrap(),
    })
}

fn unlimited() -> RateLimits {
    RateLimits {
        per_subject: Limit(None),
        per_ip: Limit(None),
    }
}

async fn gateway(auth: AuthSettings, limits: RateLimits) -> TestGateway {
    let orders = fake_upstream("orders").await;
    let payments = fake_upstream("payments").await;
    spawn_gateway_with(&orders, &payments, Duration::from_secs(5), auth, limits).await
}

/// GET /orders with `Authorization: <authorization>` (none if `None`) and `extra` headers.
async fn get(
    gw: &TestGateway,
    authorization: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = gw.http.get(gw.url("/orders?user_id=x"));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn assert_401(resp: reqwest::Response, what: &str) {
    assert_eq!(resp.status().as_u16(), 401, "{what}");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
    assert!(
        resp.headers().get("x-upstream").is_none(),
        "{what} reached a service"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{what}: {body}");
}

/// Every kind of bad token is refused with the enveloped 401 and `WWW-Authenticate: Bearer`,
/// before any service sees the request.
#[tokio::test]
async fn every_bad_token_is_a_401_that_reaches_no_service() {
    let dir = scratch();
    let ec = es256(&dir);
    let rsa = rs256(&dir);
    write_jwks(&dir.join("both.json"), &[&ec, &rsa]);
    let gw = gateway(jwt(JwksSource::File(dir.join("both.json"))), unlimited()).await;
    let sub = Uuid::new_v4().to_string();
    let now = platform::auth::now_unix();
    let claims = |patch: Value| {
        let mut c = ec.claims(&sub, &[], Duration::from_secs(600));
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // HS256 "signed" with the RSA key's public JWK as the HMAC secret: the classic confusion.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(rsa.kid().to_owned());
    let public = devauth::public_jwk_json(&rsa).to_string();
    let hs = jsonwebtoken::encode(
        &hs_header,
        &claims(json!({})),
        &EncodingKey::from_secret(public.as_bytes()).unwrap(),
    )
    .unwrap();
    // An ES256 header naming the RSA key: the key decides the algorithm, not the token.
    let mut es_on_rsa = ec.header();
    es_on_rsa.kid = Some(rsa.kid().to_owned());
    let valid = ec.token(&sub, &[]);
    let (head, rest) = valid.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other_claims = ec.sign_raw(ec.header(), &claims(json!({"sub": "someone-else"})));
    let (_, other_rest) = other_claims.split_once('.').unwrap();
    let (other_payload, _) = other_rest.split_once('.').unwrap();
    let tampered = format!("{head}.{other_payload}.{signature}");

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a bearer", Some("Basic dXNlcjpwYXNz".into())),
        ("garbage", Some("Bearer not-a-token".into())),
        ("two parts", Some("Bearer abc.def".into())),
        (
            "alg none",
            Some(format!("Bearer {}", devauth::unsecured(&claims(json!({}))))),
        ),
        ("HS256 with the public key", Some(format!("Bearer {hs}"))),
        (
            "ES256 header on an RSA key",
            Some(format!(
                "Bearer {}",
                ec.sign_raw(es_on_rsa, &claims(json!({})))
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                ec.sign_raw(ec.header(), &claims(json!({"exp": now - 3600})))
            )),
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                ec.sign_raw(ec.header(), &claims(json!({"nbf": now + 3600})))
            )),
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                ec.sign_raw(ec.header(), &claims(json!({"aud": "another-api"})))
            )),
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                ec.sign_raw(ec.header(), &claims(json!({"iss": "evil"})))
            )),
        ),
        (
            "no sub",
            Some(format!(
                "Bearer {}",
                ec.sign_raw(ec.header(), &{
                    let mut c = claims(json!({}));
                    c.as_object_mut().unwrap().remove("sub");
                    c
                })
            )),
        ),
        (
            "unknown kid",
            Some(format!(
                "Bearer {}",
                ec.with_kid("nobody-knows").token(&sub, &[])
            )),
        ),
        ("payload swapped", Some(format!("Bearer {tampered}"))),
    ];
    for (what, authorization) in &cases {
        assert_401(get(&gw, authorization.as_deref(), &[]).await, what).await;
    }
    // And the good ones of both algorithms pass.
    for signer in [&ec, &rsa] {
        let resp = get(
            &gw,
            Some(&format!("Bearer {}", signer.token(&sub, &[]))),
            &[],
        )
        .await;
        assert_eq!(resp.status().as_u16(), 201, "{:?}", signer.algorithm());
    }
    gw.shutdown.cancel();
}

/// A valid token reaches the service as the signed identity (subject, scopes) and without the
/// token; identity headers the client sent itself are dropped, with and without authentication.
#[tokio::test]
async fn services_get_the_verified_identity_and_never_the_clients_own() {
    let dir = scratch();
    let ec = es256(&dir);
    let gw = gateway(jwt(JwksSource::File(dir.join("jwks.json"))), unlimited()).await;
    let me = Uuid::new_v4().to_string();
    let victim = Uuid::new_v4().to_string();
    let spoof = [
        ("x-auth-subject", victim.as_str()),
        ("x-auth-scopes", "payments:topup"),
        ("x-auth-signature", "00"),
        ("x-auth-issued", "1"),
    ];
    let token = format!("Bearer {}", ec.token(&me, &["orders:read"]));
    let resp = get(&gw, Some(&token), &spoof).await;
    assert_eq!(resp.status().as_u16(), 201);
    let seen: Value = resp.json().await.unwrap();
    let headers = &seen["headers"];
    assert_eq!(headers["x-auth-subject"], me.as_str());
    assert_eq!(headers["x-auth-scopes"], "orders:read");
    assert!(headers.get("authorization").is_none(), "{headers}");
    // What the service checks: the signature over this very request.
    let mut map = poem::http::HeaderMap::new();
    for name in [
        "x-auth-subject",
        "x-auth-scopes",
        "x-auth-issued",
        "x-auth-signature",
    ] {
        map.insert(name, headers[name].as_str().unwrap().parse().unwrap());
    }
    let identity = platform::auth::verify(
        &map,
        &InternalSecret::parse(SECRET).unwrap(),
        &Method::GET,
        "/orders?user_id=x",
        platform::auth::now_unix(),
    )
    .unwrap();
    assert_eq!(identity.subject, me);
    gw.shutdown.cancel();

    // With authentication off nothing of the client's x-auth-* gets through either.
    let off = gateway(AuthSettings::Off, unlimited()).await;
    let seen: Value = get(&off, None, &spoof).await.json().await.unwrap();
    let names: Vec<&String> = seen["headers"].as_object().unwrap().keys().collect();
    assert!(names.iter().all(|n| !n.starts_with("x-auth-")), "{names:?}");
    off.shutdown.cancel();
}

/// A key rotated into the JWKS file is picked up at its first token (reload on unknown kid);
/// the old key keeps working while the file still lists it.
#[tokio::test]
async fn a_rotated_key_is_found_by_its_kid() {
    let dir = scratch();
    let old = es256(&dir);
    let gw = gateway(jwt(JwksSource::File(dir.join("jwks.json"))), unlimited()).await;
    let sub = Uuid::new_v4().to_string();
    let ok = |s: &Signer| format!("Bearer {}", s.token(&sub, &[]));
    assert_eq!(get(&gw, Some(&ok(&old)), &[]).await.status().as_u16(), 201);
    let files = devauth::generate(&dir, true).unwrap();
    let new = Signer::from_file(&files.signing_key, Some(&files.kid), ISSUER, AUDIENCE).unwrap();
    assert_ne!(new.kid(), old.kid());
    assert_eq!(get(&gw, Some(&ok(&new)), &[]).await.status().as_u16(), 201);
    assert_eq!(get(&gw, Some(&ok(&old)), &[]).await.status().as_u16(), 201);
    gw.shutdown.cancel();
}

/// A token verified once is remembered, but never past its own `exp`: the same token is
/// refused as expired once that passes, although it was accepted moments before.
#[tokio::test]
async fn a_remembered_token_still_expires() {
    let dir = scratch();
    let ec = es256(&dir);
    let mut auth = jwt(JwksSource::File(dir.join("jwks.json")));
    if let AuthSettings::Jwt(settings) = &mut auth {
        settings.leeway_s = 0;
    }
    let gw = gateway(auth, unlimited()).await;
    let token = format!(
        "Bearer {}",
        ec.token_for(&Uuid::new_v4().to_string(), &[], Duration::from_secs(2))
    );
    for _ in 0..3 {
        assert_eq!(get(&gw, Some(&token), &[]).await.status().as_u16(), 201);
    }
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_401(
        get(&gw, Some(&token), &[]).await,
        "expired after being remembered",
    )
    .await;
    gw.shutdown.cancel();
}

/// The JWKS may come from the provider's URL instead of a file.
#[tokio::test]
async fn the_jwks_can_come_from_a_url() {
    let dir = scratch();
    let ec = es256(&dir);
    let body = Arc::new(devauth::jwks(&[&ec]).to_string());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = body.clone();
    let app = poem::endpoint::make(move |_req: poem::Request| {
        let served = served.clone();
        async move { (*served).clone() }
    });
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    let url = format!("http://{addr}/jwks.json");
    let gw = gateway(jwt(url.parse().unwrap()), unlimited()).await;
    let token = format!("Bearer {}", ec.token(&Uuid::new_v4().to_string(), &[]));
    assert_eq!(get(&gw, Some(&token), &[]).await.status().as_u16(), 201);
    gw.shutdown.cancel();
}

async fn assert_429(resp: reqwest::Response) -> u64 {
    assert_eq!(resp.status().as_u16(), 429);
    let wait: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(wait >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS");
    wait
}

/// A subject that spends its burst gets 429 with `Retry-After`, others are unaffected, and after
/// waiting it is served again; clients without a valid token share their address's bucket; both
/// refusals are counted in `/metrics`.
#[tokio::test]
async fn rate_limits_answer_429_and_recover() {
    let dir = scratch();
    let ec = es256(&dir);
    let limits = RateLimits {
        per_subject: Limit(Some(Rate {
            per_second: 1.0,
            burst: 3,
        })),
        per_ip: Limit(Some(Rate {
            per_second: 1.0,
            burst: 2,
        })),
    };
    let gw = gateway(jwt(JwksSource::File(dir.join("jwks.json"))), limits).await;
    let busy = format!("Bearer {}", ec.token(&Uuid::new_v4().to_string(), &[]));
    let calm = format!("Bearer {}", ec.token(&Uuid::new_v4().to_string(), &[]));
    for _ in 0..3 {
        assert_eq!(get(&gw, Some(&busy), &[]).await.status().as_u16(), 201);
    }
    let wait = assert_429(get(&gw, Some(&busy), &[]).await).await;
    assert_eq!(get(&gw, Some(&calm), &[]).await.status().as_u16(), 201);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get(&gw, Some(&busy), &[]).await.status().as_u16(), 201);

    for _ in 0..2 {
        assert_eq!(get(&gw, None, &[]).await.status().as_u16(), 401);
    }
    assert_429(get(&gw, Some("Bearer x.y.z"), &[]).await).await;
    let metrics = gw.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"rate_limited_total{outcome="subject"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rate_limited_total{outcome="ip"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"auth_decisions_total{outcome="missing"} 2"#),
        "{metrics}"
    );
    gw.shutdown.cancel();
}

/// The gateway refuses to start with AUTH=jwt when the JWKS cannot be loaded.
#[tokio::test]
async fn no_jwks_no_start() {
    let dir = scratch();
    let orders = fake_upstream("orders").await;
    let auth = jwt(JwksSource::File(dir.join("missing.json")));
    let gw = spawn_gateway_with(&orders, &orders, Duration::from_secs(5), auth, unlimited()).await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), gw.server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, Err(gateway::startup::StartupError::Jwks(_))),
        "{outcome:?}"
    );
}
