//! Authentication and rate limits in front of the proxied routes.
//!
//! Every request to `/orders*` and `/accounts*` first loses whatever internal identity headers
//! (`x-auth-*`) the client sent. With `AUTH=jwt` its bearer token is then verified
//! ([`token::Verifier`]); a valid one is replaced by the signed identity the services trust
//! ([`platform::auth::attach`]) and counted against its subject's rate limit, anything else is a
//! 401 with `WWW-Authenticate: Bearer` — counted against the client address's limit, so guessing
//! tokens is throttled too. With `AUTH=off` every request counts against its address.
//!
//! Invariant: no request reaches a service with an identity the gateway did not verify itself.

pub mod cache;
pub mod jwks;
pub mod token;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;

use platform::auth::{self as identity, InternalSecret};
use platform::error::{ErrorCode, ErrorEnvelope};
use platform::metrics::Metrics;

use crate::ratelimit::{Limit, Limiter};
use crate::request_id;
use jwks::JwksSource;
use token::{TokenError, Verifier};

/// `AUTH=jwt`: how tokens are checked (environment variables in [`crate::config`]).
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Where the provider's public keys are (`AUTH_JWKS`).
    pub jwks: JwksSource,
    /// The only accepted `iss` (`AUTH_ISSUER`).
    pub issuer: String,
    /// The only accepted `aud` (`AUTH_AUDIENCE`): tokens minted for another API are refused.
    pub audience: String,
    /// Clock difference allowed on `exp`/`nbf` (`AUTH_LEEWAY_S`, default 30).
    pub leeway_s: u64,
    /// How often the JWKS is reloaded besides on unknown `kid`s (`AUTH_JWKS_REFRESH_S`, 300).
    pub refresh: Duration,
    /// Signs the identity for the services (`AUTH_INTERNAL_SECRET`).
    pub secret: InternalSecret,
}

/// `AUTH`: off, or tokens checked as [`JwtSettings`] says.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    /// No authentication (the seed's walk-through).
    Off,
    /// Bearer tokens required on the proxied routes.
    Jwt(JwtSettings),
}

/// The rate limits (`RATE_LIMIT_PER_SUBJECT`, `RATE_LIMIT_PER_IP`).
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Per verified token subject.
    pub per_subject: Limit,
    /// Per client address, for requests without a valid token (all requests with AUTH=off).
    pub per_ip: Limit,
}

/// What the guard needs, shared by every guarded route.
pub struct Access {
    verifier: Option<(Verifier, InternalSecret)>,
    per_subject: Option<Limiter<String>>,
    per_ip: Option<Limiter<Option<IpAddr>>>,
    metrics: Arc<Metrics>,
}

impl Access {
    /// Access control as configured; `verifier` is `Some` with `AUTH=jwt`.
    pub fn new(
        verifier: Option<(Verifier, InternalSecret)>,
        limits: RateLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Access {
            verifier,
            per_subject: limits.per_subject.0.map(Limiter::new),
            per_ip: limits.per_ip.0.map(Limiter::new),
            metrics,
        }
    }

    fn limit_ip(&self, ip: Option<IpAddr>) -> Result<(), u32> {
        match &self.per_ip {
            Some(limiter) => limiter.check(&ip, Instant::now()).inspect_err(|_| {
                self.metrics.rate_limited("ip");
            }),
            None => Ok(()),
        }
    }

    fn limit_subject(&self, subject: &str) -> Result<(), u32> {
        match &self.per_subject {
            Some(limiter) => limiter
                .check(&subject.to_owned(), Instant::now())
                .inspect_err(|_| self.metrics.rate_limited("subject")),
            None => Ok(()),
        }
    }
}

/// Guards one upstream's proxy: authentication, identity headers, rate limits.
pub struct Guard<E> {
    inner: E,
    access: Arc<Access>,
}

impl<E> Guard<E> {
    /// `inner` behind `access`.
    pub fn new(inner: E, access: Arc<Access>) -> Self {
        Guard { inner, access }
    }
}

fn too_many(retry_after: u32) -> Response {
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(ErrorEnvelope::new(
            ErrorCode::TooManyRequests,
            format!("rate limit exceeded, retry in {retry_after} s"),
        ))
        .into_response(),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

impl<E: Endpoint> Endpoint for Guard<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        identity::strip_internal(req.headers_mut());
        let ip = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let Some((verifier, secret)) = &self.access.verifier else {
            if let Err(wait) = self.access.limit_ip(ip) {
                return Ok(refused(&req, 429, "rate limited (address)", too_many(wait)));
            }
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        match verifier.verify_headers(req.headers()).await {
            Ok(who) => {
                self.access.metrics.auth("ok");
                if let Err(wait) = self.access.limit_subject(&who.subject) {
                    return Ok(refused(&req, 429, "rate limited (subject)", too_many(wait)));
                }
                let path_and_query = req
                    .original_uri()
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_owned();
                let method = req.method().clone();
                let headers = req.headers_mut();
                // The services need the verified identity, not the bearer credential.
                headers.remove(header::AUTHORIZATION);
                identity::attach(
                    headers,
                    secret,
                    &who,
                    &method,
                    &path_and_query,
                    identity::now_unix(),
                );
                self.inner.call(req).await.map(IntoResponse::into_response)
            }
            Err(error) => {
                self.access.metrics.auth(error.label());
                if let Err(wait) = self.access.limit_ip(ip) {
                    return Ok(refused(&req, 429, "rate limited (address)", too_many(wait)));
                }
                let described = (error != TokenError::Missing).then(|| error.to_string());
                let resp = identity::unauthorized(&error.to_string(), described.as_deref());
                Ok(refused(&req, 401, error.label(), resp))
            }
        }
    }
}

/// Logs a request the guard answered itself, once, like the proxy logs the ones it forwards.
fn refused(req: &Request, status: u16, reason: &str, resp: Response) -> Response {
    tracing::info!(
        method = %req.method(),
        path = req.original_uri().path(),
        status,
        reason,
        request_id = request_id::of(req),
        "request refused"
    );
    resp
}
