//! `Idempotency-Key` on the POSTs: a client that retries after a timeout gets the first answer
//! back instead of a second effect.
//!
//! Invariants:
//! - the key row is written in the same transaction as the effect, so a crash keeps both or
//!   neither, and only a successful answer is remembered (an error wrote nothing, so a retry
//!   simply runs again);
//! - a second request with the key while the first is still running waits on the key row's
//!   lock (`INSERT … ON CONFLICT` blocks on an uncommitted conflicting row) and then replays the
//!   first answer — or does the work itself if the first failed: never two effects;
//! - keys are per user (the user the body names) and expire after the service's TTL: an expired
//!   key is taken over by the next request, and [`Purge`] deletes expired rows in small batches.

use std::time::Duration;

use poem::{Request, RequestBody};
use poem_openapi::error::ParseParamError;
use poem_openapi::registry::{MetaParamIn, MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::ApiError;

/// The request header clients send.
pub const HEADER: &str = "Idempotency-Key";

/// The response header that marks a replayed answer (`true`); absent on a fresh one.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// The longest key accepted, in characters.
pub const MAX_LEN: usize = 255;

/// A key as a client may send it: 1..=255 printable ASCII characters (spaces inside allowed),
/// not blank. Anything else is a 400 naming the header, so a client bug is never silently
/// treated as "no key".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Err(format!("{HEADER} must not be empty"));
        }
        if raw.len() > MAX_LEN {
            return Err(format!(
                "{HEADER} must be at most {MAX_LEN} characters, got {}",
                raw.chars().count()
            ));
        }
        if !raw.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(format!(
                "{HEADER} must be printable ASCII without control characters"
            ));
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

contract::scalar_type!(IdempotencyKey, "idempotency_key", {
    let mut schema = MetaSchema::new("string");
    schema.min_length = Some(1);
    schema.max_length = Some(MAX_LEN);
    // Printable ASCII, not only spaces.
    schema.pattern = Some("^[ -~]*[!-~][ -~]*$".into());
    schema
});

/// The `Idempotency-Key` header as a handler parameter (optional). poem-openapi's own `Header`
/// skips values that are not visible ASCII and takes the first of repeated headers, so a key
/// like `ключ` would silently count as no key at all; this reads every value and refuses those
/// (400 naming the header), as well as a header sent twice.
pub struct KeyHeader(pub Option<IdempotencyKey>);

impl<'a> ApiExtractor<'a> for KeyHeader {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = false;

    type ParamType = Option<IdempotencyKey>;
    type ParamRawType = IdempotencyKey;

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(IdempotencyKey::schema_ref())
    }

    fn param_raw_type(&self) -> Option<&IdempotencyKey> {
        self.0.as_ref()
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let refuse = |reason: String| ParseParamError {
            name: HEADER,
            reason,
        };
        let mut values = request.headers().get_all(HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(KeyHeader(None));
        };
        if values.next().is_some() {
            return Err(refuse(format!("{HEADER} must be sent once")).into());
        }
        let text = value.to_str().map_err(|_| {
            refuse(format!(
                "{HEADER} must be printable ASCII without control characters"
            ))
        })?;
        let key = IdempotencyKey::parse(text).map_err(refuse)?;
        Ok(KeyHeader(Some(key)))
    }
}

/// One keyed request: who it acts for, what it is and what it asked, so that a reuse of the key
/// for anything else is told apart from a retry.
pub struct Keyed<'a> {
    /// The client's key.
    pub key: &'a IdempotencyKey,
    /// The user the request acts for; keys of different users never collide.
    pub user: Uuid,
    /// `POST /orders` and the like: a key used for one operation cannot replay another.
    pub operation: &'static str,
    /// The parsed request in canonical JSON (equal bodies in different spellings, e.g. `100`
    /// and `100.00`, are the same request).
    request: String,
}

impl<'a> Keyed<'a> {
    /// `request` (the parsed body, normalised by the caller where a default applies) under
    /// `key`, for `user`'s `operation`.
    pub fn new(
        key: &'a IdempotencyKey,
        user: Uuid,
        operation: &'static str,
        request: &impl ToJSON,
    ) -> Self {
        Keyed {
            key,
            user,
            operation,
            request: request.to_json().unwrap_or_default().to_string(),
        }
    }
}

/// What [`Keys::perform`] gave: the answer, and whether it is a replay of an earlier one.
#[derive(Debug)]
pub struct Performed<T> {
    /// The answer's data.
    pub value: T,
    /// True when the work was done by an earlier request with the same key.
    pub replayed: bool,
}

impl<T> Performed<T> {
    /// The value of the replay header: `Some(true)` on a replay, absent otherwise.
    pub fn replay_header(&self) -> Option<bool> {
        self.replayed.then_some(true)
    }
}

/// How long keys are remembered, from the service's settings.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    ttl: Duration,
}

impl Keys {
    /// Keys kept for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Keys { ttl }
    }

    /// Runs `effect` in one transaction, under `keyed` when the request carried a key.
    ///
    /// Without a key this is just the transaction. With one: a fresh key runs `effect` and
    /// stores its answer in the same transaction; a key already answered for the same request
    /// replays that answer without running anything; a key answered for a different request
    /// (or another operation) is a 409 naming the key.
    pub async fn perform<T, F>(
        &self,
        pool: &PgPool,
        keyed: Option<Keyed<'_>>,
        effect: F,
    ) -> Result<Performed<T>, ApiError>
    where
        T: ToJSON + ParseFromJSON,
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, ApiError>,
    {
        let mut tx = pool.begin().await?;
        if let Some(keyed) = &keyed
            && let Some(earlier) = self.claim(&mut tx, keyed).await?
        {
            // The transaction wrote nothing; dropping it rolls back the row lock.
            return earlier.replay(keyed);
        }
        let value = effect(&mut tx).await?;
        if let Some(keyed) = &keyed {
            remember(&mut tx, keyed, &value).await?;
        }
        tx.commit().await?;
        Ok(Performed {
            value,
            replayed: false,
        })
    }

    /// Takes the key for this request, or returns the earlier answer it already has. Waits
    /// while another transaction holds the key; an expired key is taken over.
    async fn claim(
        &self,
        conn: &mut PgConnection,
        keyed: &Keyed<'_>,
    ) -> Result<Option<Earlier>, sqlx::Error> {
        let taken: Option<bool> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (user_id, key, operation, request) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, key) DO UPDATE SET operation = EXCLUDED.operation, \
                 request = EXCLUDED.request, response = NULL, created_at = now() \
             WHERE idempotency_keys.created_at < now() - make_interval(secs => $5) \
             RETURNING true",
        )
        .bind(keyed.user)
        .bind(keyed.key.as_str())
        .bind(keyed.operation)
        .bind(&keyed.request)
        .bind(self.ttl.as_secs_f64())
        .fetch_optional(&mut *conn)
        .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let (operation, request, response): (String, String, Option<Value>) = sqlx::query_as(
            "SELECT operation, request, response FROM idempotency_keys \
             WHERE user_id = $1 AND key = $2",
        )
        .bind(keyed.user)
        .bind(keyed.key.as_str())
        .fetch_one(conn)
        .await?;
        Ok(Some(Earlier {
            operation,
            request,
            response,
        }))
    }

    /// The periodic task that deletes expired keys.
    pub fn purge(&self, pool: PgPool) -> Purge {
        Purge {
            pool,
            ttl: self.ttl,
        }
    }
}

/// The stored answer of a key's first request.
struct Earlier {
    operation: String,
    request: String,
    response: Option<Value>,
}

impl Earlier {
    /// The earlier answer when `keyed` is the same request, else the 409.
    fn replay<T: ParseFromJSON>(self, keyed: &Keyed<'_>) -> Result<Performed<T>, ApiError> {
        if self.operation != keyed.operation || self.request != keyed.request {
            return Err(ApiError::conflict(format!(
                "{HEADER} {:?} was already used for a different request ({}); \
                 send a new key for a new request",
                keyed.key.as_str(),
                self.operation
            )));
        }
        let value = T::parse_from_json(self.response).map_err(|e| {
            ApiError::internal(&sqlx::Error::Decode(
                format!("idempotency_keys.response: {}", e.into_message()).into(),
            ))
        })?;
        Ok(Performed {
            value,
            replayed: true,
        })
    }
}

/// Stores the answer of the key's request, in the effect's transaction.
async fn remember<T: ToJSON>(
    conn: &mut PgConnection,
    keyed: &Keyed<'_>,
    value: &T,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET response = $3 WHERE user_id = $1 AND key = $2")
        .bind(keyed.user)
        .bind(keyed.key.as_str())
        .bind(value.to_json().unwrap_or(Value::Null))
        .execute(conn)
        .await?;
    Ok(())
}

/// Rows one purge statement deletes at most: short transactions, short locks.
const PURGE_BATCH: i64 = 1_000;

/// Deletes expired keys in batches of [`PURGE_BATCH`]; instances skip each other's rows.
pub struct Purge {
    pool: PgPool,
    ttl: Duration,
}

impl Purge {
    /// How often to run: once a minute, or once per TTL when that is shorter (tests).
    pub fn every(&self) -> Duration {
        self.ttl.min(Duration::from_secs(60))
    }

    /// Deletes every key older than the TTL; returns how many.
    pub async fn run_once(&self) -> Result<u64, sqlx::Error> {
        crate::db::delete_in_batches(PURGE_BATCH, || {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE (user_id, key) IN ( \
                     SELECT user_id, key FROM idempotency_keys \
                     WHERE created_at < now() - make_interval(secs => $1) \
                     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(self.ttl.as_secs_f64())
            .bind(PURGE_BATCH)
            .execute(&self.pool)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_clients_send_parse() {
        for ok in [
            "a",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "order 42 / try",
            &"k".repeat(MAX_LEN),
        ] {
            assert_eq!(IdempotencyKey::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn malformed_keys_are_refused_naming_the_header() {
        for bad in [
            String::new(),
            "   ".into(),
            "k".repeat(MAX_LEN + 1),
            "a\tb".into(),
            "a\u{7f}".into(),
            "a\u{0}".into(),
            "ключ".into(),
        ] {
            let err = IdempotencyKey::parse(&bad).unwrap_err();
            assert!(err.starts_with(HEADER), "{bad:?}: {err}");
        }
    }
}
