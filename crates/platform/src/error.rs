//! The one error envelope of SPEC §2: `{"error": {"code", "message"}}`.
//!
//! Handlers return [`ApiError`]; everything else that can fail inside poem (body, path and query
//! parsing, unknown routes, wrong methods, size limits) is mapped into the same envelope by
//! [`envelope_response`], so a client never sees two error shapes. 5xx messages say nothing
//! internal: the cause is logged once, here.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::error::{ParseParamError, ParsePathError, ParseRequestPayloadError};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};

/// Machine-readable error codes; the set is closed so clients can switch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Malformed JSON, wrong type, missing or invalid field, rule violated.
    BadRequest,
    /// No bearer token, or one that is expired, not yet valid, for another audience or issuer,
    /// badly signed or malformed.
    Unauthorized,
    /// Authenticated, but not allowed: another user's resource, or a missing scope.
    Forbidden,
    /// Unknown account, order or route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The resource already exists.
    Conflict,
    /// Body over the limit.
    PayloadTooLarge,
    /// Body is not JSON.
    UnsupportedMediaType,
    /// The client's rate limit is spent; retry after `Retry-After` seconds.
    TooManyRequests,
    /// A bug or an unexpected failure; details are only in the logs.
    Internal,
    /// The gateway could not reach a service.
    BadGateway,
    /// A dependency (database, broker, upstream) is down.
    Unavailable,
}

impl ErrorCode {
    /// The code that goes with an HTTP status, for errors raised by the framework.
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::BAD_GATEWAY => ErrorCode::BadGateway,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => ErrorCode::Unavailable,
            s if s.is_client_error() => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        }
    }
}

/// The inner object of the envelope.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable code to switch on.
    pub code: ErrorCode,
    /// Human readable; names the offending field where there is one.
    pub message: String,
}

/// `{"error": {...}}`.
#[derive(Debug, Clone, Object)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

impl ErrorEnvelope {
    /// Builds an envelope.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                code,
                message: message.into(),
            },
        }
    }
}

/// Every error an operation can answer with; each variant's status is fixed by SPEC §2.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request or a broken rule; the message names the field.
    #[oai(status = 400)]
    BadRequest(Json<ErrorEnvelope>),
    /// No valid bearer token (with AUTH=jwt): missing, expired, not yet valid, for another
    /// audience or issuer, badly signed or malformed.
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorEnvelope>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The token is valid but does not allow this: another user's account or orders, or a
    /// missing scope (top-ups need `payments:topup`). Nothing was written.
    #[oai(status = 403)]
    Forbidden(Json<ErrorEnvelope>),
    /// The account, order or route does not exist.
    #[oai(status = 404)]
    NotFound(Json<ErrorEnvelope>),
    /// The resource already exists.
    #[oai(status = 409)]
    Conflict(Json<ErrorEnvelope>),
    /// The client's rate limit (per token subject, or per address without a token) is spent,
    /// answered by the gateway; retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u32),
    /// Unexpected failure; nothing internal is disclosed.
    #[oai(status = 500)]
    Internal(Json<ErrorEnvelope>),
    /// A dependency is down; retrying later may succeed (after `Retry-After` seconds).
    #[oai(status = 503)]
    Unavailable(Json<ErrorEnvelope>, #[oai(header = "Retry-After")] u32),
}

/// Seconds a client is told to wait before retrying a 503: about one database restart.
pub const RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    /// 400 with a message naming the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(Json(ErrorEnvelope::new(ErrorCode::BadRequest, message)))
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(Json(ErrorEnvelope::new(ErrorCode::NotFound, message)))
    }

    /// 403: the caller may not do this; the message says why without disclosing data.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(Json(ErrorEnvelope::new(ErrorCode::Forbidden, message)))
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict(Json(ErrorEnvelope::new(ErrorCode::Conflict, message)))
    }

    /// 500: logs the cause chain once and answers a generic message.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error_chain(cause), "request failed");
        ApiError::Internal(Json(ErrorEnvelope::new(
            ErrorCode::Internal,
            "internal error",
        )))
    }

    /// 503: logs the cause and tells the client to retry.
    pub fn unavailable(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::warn!(error = %error_chain(cause), "dependency unavailable");
        ApiError::Unavailable(
            Json(ErrorEnvelope::new(
                ErrorCode::Unavailable,
                "a dependency is unavailable, retry later",
            )),
            RETRY_AFTER_SECS,
        )
    }
}

/// Maps a database error: connection trouble — no connection in time, the socket, or the server
/// saying it cannot take the work now (SQLSTATE class 08 connection exception, 53 insufficient
/// resources such as too many connections, 57 operator intervention such as a shutdown or
/// restart in progress, 25006 a write on a server that turned standby in a failover) — is a
/// 503 a client may retry; anything else a 500.
#[cfg(feature = "db")]
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            ApiError::unavailable(&err)
        } else {
            ApiError::internal(&err)
        }
    }
}

/// Whether `err` can never pass by retrying the same statement with the same data: a data
/// exception (SQLSTATE class 22, e.g. a value out of range), an integrity violation (class 23)
/// or a value the code cannot decode. A consumer settles such a message instead of retrying it.
#[cfg(feature = "db")]
pub fn is_permanent(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| matches!(c.get(..2), Some("22" | "23"))),
        _ => false,
    }
}

/// Whether `err` says the database is unavailable rather than the request wrong.
#[cfg(feature = "db")]
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| matches!(c.get(..2), Some("08" | "53" | "57")) || c == "25006"),
        _ => false,
    }
}

/// `a: b: c` — the whole `source()` chain on one log line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}

/// Turns any poem error into an enveloped response.
///
/// Errors that already are responses (an [`ApiError`]) pass through untouched; the framework's
/// own errors keep their status and get the matching code and a readable message.
pub fn envelope_response(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let code = ErrorCode::for_status(status);
    let message = if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), "unhandled error");
        "internal error".to_owned()
    } else if let Some(parse) = err.downcast_ref::<ParseRequestPayloadError>() {
        parse.reason.clone()
    } else if let Some(parse) = err.downcast_ref::<ParsePathError>() {
        // `parse.name` is poem-openapi's internal `param0`; our id types name the field.
        param_message("", &parse.reason)
    } else if let Some(parse) = err.downcast_ref::<ParseParamError>() {
        param_message(parse.name, &parse.reason)
    } else {
        framework_message(status, &err.to_string())
    };
    (
        status,
        Json(ErrorEnvelope::new(code, message)).into_response(),
    )
        .into_response()
}

/// `order_id must be a UUID, got "x"` / `user_id is required` from poem-openapi's reasons;
/// `name` is empty for path parameters, whose reasons already name the field.
fn param_message(name: &str, reason: &str) -> String {
    if reason.contains("expects an input value") {
        return format!("{name} is required");
    }
    // Drop the `failed to parse "string_uuid": ` type prefix: clients know fields, not types.
    let reason = match reason.split_once("\": ") {
        Some((head, rest)) if head.starts_with("failed to parse \"") => rest,
        _ => reason,
    };
    let reason = reason
        .split(" (occurred while parsing")
        .next()
        .unwrap_or(reason);
    let reason = validator_message(reason);
    let reason = reason.as_str();
    if reason.contains(name) {
        reason.to_owned()
    } else {
        format!("{name}: {reason}")
    }
}

/// `verification failed. minimum(1, exclusive: false)` — a failed poem-openapi validator — as
/// `must be at least 1`; any other reason unchanged.
fn validator_message(reason: &str) -> String {
    let Some(rule) = reason.strip_prefix("verification failed. ") else {
        return reason.to_owned();
    };
    let bound = |name: &str| {
        rule.strip_prefix(name)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.split_once(", exclusive: "))
            .map(|(n, exclusive)| (n.to_owned(), exclusive.starts_with("true")))
    };
    match (bound("minimum"), bound("maximum")) {
        (Some((n, false)), _) => format!("must be at least {n}"),
        (Some((n, true)), _) => format!("must be greater than {n}"),
        (_, Some((n, false))) => format!("must be at most {n}"),
        (_, Some((n, true))) => format!("must be less than {n}"),
        _ => format!("must satisfy {rule}"),
    }
}

/// Rewrites poem's parser messages into ones a client can act on.
fn framework_message(status: StatusCode, raw: &str) -> String {
    match status {
        StatusCode::NOT_FOUND => "no such resource".into(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed for this resource".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than 64 KiB".into(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "request body must be application/json".into(),
        _ => raw
            .replace("failed to parse ", "invalid ")
            .trim()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server error with SQLSTATE `code`, as sqlx reports one.
    #[cfg(feature = "db")]
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    #[cfg(feature = "db")]
    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    #[cfg(feature = "db")]
    impl std::error::Error for Sqlstate {}

    #[cfg(feature = "db")]
    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "server says no"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[cfg(feature = "db")]
    #[tokio::test]
    async fn a_database_that_cannot_take_the_work_now_is_a_503_to_retry() {
        // too many connections, admin shutdown, cannot connect now, connection failure, a
        // write on a server a failover turned into a standby
        for code in ["53300", "57P01", "57P03", "08006", "25006"] {
            let err: ApiError = sqlx::Error::Database(Box::new(Sqlstate(code))).into();
            let resp = envelope_response(err.into());
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert_eq!(resp.headers()["retry-after"], "1", "{code}");
        }
        // a unique violation or a check violation is not the server being away
        for code in ["23505", "23514", "22003", "25001"] {
            let err: ApiError = sqlx::Error::Database(Box::new(Sqlstate(code))).into();
            let resp = envelope_response(err.into());
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{code}");
        }
    }

    async fn body_of(resp: Response) -> serde_json::Value {
        let bytes = resp.into_body().into_vec().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn api_errors_keep_their_status_and_envelope() {
        let resp = envelope_response(ApiError::conflict("account already exists").into());
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        let body = body_of(resp).await;
        assert_eq!(body["error"]["code"], "CONFLICT");
        assert_eq!(body["error"]["message"], "account already exists");
    }

    #[tokio::test]
    async fn framework_errors_get_the_envelope() {
        let resp = envelope_response(poem::error::NotFoundError.into());
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_of(resp).await["error"]["code"], "NOT_FOUND");

        let resp = envelope_response(poem::error::MethodNotAllowedError.into());
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body_of(resp).await["error"]["code"], "METHOD_NOT_ALLOWED");
    }

    #[tokio::test]
    async fn server_errors_disclose_nothing() {
        let err = poem::Error::from_string(
            "password=hunter2 at db:5432",
            StatusCode::INTERNAL_SERVER_ERROR,
        );
        let body = body_of(envelope_response(err)).await;
        assert_eq!(body["error"]["code"], "INTERNAL");
        assert_eq!(body["error"]["message"], "internal error");
    }

    #[test]
    fn parameter_messages_name_the_field_not_the_type() {
        assert_eq!(
            param_message(
                "user_id",
                "failed to parse \"string_uuid\": user_id must be a UUID"
            ),
            "user_id must be a UUID"
        );
        assert_eq!(
            param_message("user_id", "Type \"string_uuid\" expects an input value."),
            "user_id is required"
        );
        assert_eq!(
            param_message("limit", "invalid digit"),
            "limit: invalid digit"
        );
    }

    #[test]
    fn every_listed_status_has_its_code() {
        assert_eq!(
            ErrorCode::for_status(StatusCode::UNPROCESSABLE_ENTITY),
            ErrorCode::BadRequest
        );
        assert_eq!(
            ErrorCode::for_status(StatusCode::SERVICE_UNAVAILABLE),
            ErrorCode::Unavailable
        );
        assert_eq!(
            ErrorCode::for_status(StatusCode::BAD_GATEWAY),
            ErrorCode::BadGateway
        );
    }

    #[test]
    fn failed_validators_read_as_rules() {
        assert_eq!(
            param_message(
                "limit",
                "failed to parse \"integer(int64)\": verification failed. maximum(500, exclusive: false)"
            ),
            "limit: must be at most 500"
        );
        assert_eq!(
            validator_message("verification failed. minimum(0, exclusive: false)"),
            "must be at least 0"
        );
        assert_eq!(validator_message("must be a UUID"), "must be a UUID");
    }
}
