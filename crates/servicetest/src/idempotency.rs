//! The `Idempotency-Key` checks every keyed POST gets, written once for `POST /orders`,
//! `POST /accounts` and `POST /accounts/topup`.
//!
//! Each check counts the request's effects in the service's database (orders, accounts or
//! top-ups of the user) — an answer alone could be replayed while a second effect was written.

use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::{ServiceUnderTest, WAIT, assert_error};

/// One keyed POST under test.
pub struct KeyedPost {
    /// Its path.
    pub path: &'static str,
    /// The request for a user.
    pub body: fn(Uuid) -> Value,
    /// Another request for the same user (a different amount, say): reusing a key for it is a
    /// 409.
    pub other_body: fn(Uuid) -> Value,
    /// SQL counting the effects for user `$1` (e.g. `SELECT count(*) FROM orders WHERE
    /// user_id = $1`).
    pub effects: &'static str,
    /// The answer of a first request.
    pub status: StatusCode,
}

/// What an answer was, to compare a replay with it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its body as sent.
    pub body: String,
    /// Whether it said it was a replay.
    pub replayed: bool,
}

impl ServiceUnderTest {
    /// `POST path` with `body` and the raw header value `key` (`None`: no header).
    pub async fn post_keyed(&self, path: &str, key: Option<HeaderValue>, body: &Value) -> Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("request sent")
    }

    /// [`Self::post_keyed`] with a well-formed key, answered as an [`Answer`].
    pub async fn keyed(&self, post: &KeyedPost, key: &str, body: &Value) -> Answer {
        let resp = self
            .post_keyed(
                post.path,
                Some(HeaderValue::from_str(key).expect("a well-formed key")),
                body,
            )
            .await;
        let status = resp.status();
        let replayed = match resp.headers().get("Idempotent-Replayed") {
            None => false,
            Some(v) => {
                assert_eq!(v, "true", "the replay header says true or is absent");
                true
            }
        };
        Answer {
            status,
            body: resp.text().await.expect("response body"),
            replayed,
        }
    }

    /// How many effects `post` has had for `user`.
    pub async fn effects(&self, post: &KeyedPost, user: Uuid) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(post.effects))
            .bind(user)
            .fetch_one(&self.pool)
            .await
            .expect("count effects")
    }

    /// Same key, same request: the first answer again, marked as a replay, and one effect;
    /// the same key with the other request is a 409 naming the key and writes nothing; the
    /// same key for another user (`other_user`) is that user's own key.
    pub async fn check_replay_and_conflict(&self, post: &KeyedPost, user: Uuid, other_user: Uuid) {
        let key = format!("retry-{}", Uuid::new_v4());
        let first = self.keyed(post, &key, &(post.body)(user)).await;
        assert_eq!(first.status, post.status, "first answer: {}", first.body);
        assert!(!first.replayed, "a first answer is not a replay");
        let before = self.effects(post, user).await;

        for _ in 0..2 {
            let again = self.keyed(post, &key, &(post.body)(user)).await;
            assert_eq!(
                again,
                Answer {
                    replayed: true,
                    ..first.clone()
                },
                "a retry replays the first answer exactly"
            );
        }
        assert_eq!(
            self.effects(post, user).await,
            before,
            "retries wrote nothing"
        );

        let resp = self
            .post_keyed(
                post.path,
                Some(HeaderValue::from_str(&key).expect("a well-formed key")),
                &(post.other_body)(user),
            )
            .await;
        let message = assert_error(resp, StatusCode::CONFLICT, "CONFLICT").await;
        assert!(
            message.contains("Idempotency-Key") && message.contains(&key),
            "the 409 names the key: {message}"
        );
        assert_eq!(
            self.effects(post, user).await,
            before,
            "a reused key wrote nothing"
        );

        let theirs = self.keyed(post, &key, &(post.body)(other_user)).await;
        assert_eq!(theirs.status, post.status, "{}", theirs.body);
        assert!(!theirs.replayed, "keys are per user: {}", theirs.body);
    }

    /// 20 requests with one key at the same time: one effect, and every answer is the same.
    pub async fn check_concurrent(&self, post: &KeyedPost, user: Uuid) {
        let key = format!("burst-{}", Uuid::new_v4());
        let before = self.effects(post, user).await;
        let body = (post.body)(user);
        let answers =
            futures::future::join_all((0..20).map(|_| self.keyed(post, &key, &body))).await;
        assert_eq!(
            self.effects(post, user).await,
            before + 1,
            "20 concurrent requests with one key had one effect"
        );
        let fresh: Vec<&Answer> = answers.iter().filter(|a| !a.replayed).collect();
        assert_eq!(fresh.len(), 1, "one did the work, the rest replayed it");
        for a in &answers {
            assert_eq!((a.status, &a.body), (fresh[0].status, &fresh[0].body));
        }
    }

    /// Keys that are not keys are a 400 naming the header, and nothing is written.
    pub async fn check_malformed_keys(&self, post: &KeyedPost, user: Uuid) {
        let before = self.effects(post, user).await;
        let long = "k".repeat(256);
        let malformed: [&[u8]; 5] = [b"", b"   ", long.as_bytes(), b"a\tb", "ключ".as_bytes()];
        for raw in malformed {
            let value = HeaderValue::from_bytes(raw).expect("a header value reqwest sends");
            let resp = self
                .post_keyed(post.path, Some(value), &(post.body)(user))
                .await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "key {raw:?}");
            let message = assert_error(resp, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
            assert!(
                message.contains("Idempotency-Key"),
                "{raw:?}: the 400 names the header: {message}"
            );
        }
        assert_eq!(
            self.effects(post, user).await,
            before,
            "malformed keys wrote nothing"
        );
    }

    /// After the TTL the key is forgotten: the same request runs again, answering
    /// `after_expiry`, whether the expired row is still there (taken over; checked by ageing
    /// it) or the purge task deleted it (checked with the service restarted on a 1 s TTL).
    /// The first request has one effect; each later run adds `rerun_effect` (0 when running
    /// again is refused, as a second account is).
    pub async fn check_expiry(
        &mut self,
        post: &KeyedPost,
        user: Uuid,
        after_expiry: StatusCode,
        rerun_effect: i64,
    ) {
        let start = self.effects(post, user).await;
        let key = format!("expiring-{}", Uuid::new_v4());
        let first = self.keyed(post, &key, &(post.body)(user)).await;
        assert_eq!(first.status, post.status, "{}", first.body);
        sqlx::query(
            "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second' \
             WHERE key = $1",
        )
        .bind(&key)
        .execute(&self.pool)
        .await
        .expect("age the key");
        let again = self.keyed(post, &key, &(post.body)(user)).await;
        assert_eq!(again.status, after_expiry, "taken over: {}", again.body);
        assert!(!again.replayed, "an expired key is not replayed");
        assert_eq!(self.effects(post, user).await, start + 1 + rerun_effect);

        self.restart_with(|s| s.idempotency_key_ttl = Duration::from_secs(1))
            .await;
        let key = format!("purged-{}", Uuid::new_v4());
        let first = self.keyed(post, &key, &(post.body)(user)).await;
        assert_eq!(first.status, after_expiry, "{}", first.body);
        testkit::eventually("the purge task to delete the expired key", WAIT, || async {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
                    .bind(&key)
                    .fetch_one(&self.pool)
                    .await
                    .expect("count keys");
            (left == 0).then_some(())
        })
        .await;
        let again = self.keyed(post, &key, &(post.body)(user)).await;
        assert_eq!(
            again.status, after_expiry,
            "after the purge: {}",
            again.body
        );
        assert!(!again.replayed, "a purged key is not replayed");
        assert_eq!(self.effects(post, user).await, start + 1 + 3 * rerun_effect);
    }
}
