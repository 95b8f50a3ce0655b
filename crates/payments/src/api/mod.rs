//! HTTP operations of the payments service; the OpenAPI document is generated from this file.
//!
//! Handlers only translate: DTO → domain value (400 naming the field on failure) → store →
//! response DTO.

mod dto;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use sqlx::PgPool;

use contract::page::Page;
use contract::{Money, UserId};
use platform::ApiError;
use platform::auth::{Caller, TOPUP_SCOPE};
use platform::body::JsonBody;
use platform::idempotency::{KeyHeader, Keyed, Keys};
use platform::metrics::Metrics;
use std::sync::Arc;

use crate::store::audit::{self, Action};
use crate::store::{self, CreateError, TopUpError};
pub use dto::{
    AccountData, AccountDto, CreateAccountRequest, TopUpRequest, TransactionDto, TransactionKind,
    TransactionList,
};

#[derive(Tags)]
enum ApiTags {
    /// One account per user: open, top up, read the balance and its history.
    Accounts,
}

/// The accounts API.
pub struct AccountsApi {
    pool: PgPool,
    keys: Keys,
    metrics: Arc<Metrics>,
}

impl AccountsApi {
    /// An API over the payments database, remembering idempotency keys as `keys` says and
    /// counting accounts opened and top-ups in `metrics`.
    pub fn new(pool: PgPool, keys: Keys, metrics: Arc<Metrics>) -> Self {
        AccountsApi {
            pool,
            keys,
            metrics,
        }
    }
}

/// Answers of POST /accounts.
#[derive(ApiResponse)]
pub enum CreateAccountResponse {
    /// Opened. A retry with the same `Idempotency-Key` answers the same again, with
    /// `Idempotent-Replayed: true` (without a key, a second attempt is a 409).
    #[oai(status = 201)]
    Created(
        Json<AccountData>,
        #[oai(header = "Idempotent-Replayed")] Option<bool>,
    ),
}

/// Answers of POST /accounts/topup.
#[derive(ApiResponse)]
pub enum TopUpResponse {
    /// Added; the balance right after this top-up. A retry with the same `Idempotency-Key`
    /// answers that same balance again, with `Idempotent-Replayed: true`, adding nothing.
    #[oai(status = 200)]
    Ok(
        Json<AccountData>,
        #[oai(header = "Idempotent-Replayed")] Option<bool>,
    ),
}

/// Answers of GET /accounts/{user_id}.
#[derive(ApiResponse)]
pub enum AccountResponse {
    /// The account with its current balance.
    #[oai(status = 200)]
    Ok(Json<AccountData>),
}

/// Answers of GET /accounts/{user_id}/transactions.
#[derive(ApiResponse)]
pub enum HistoryResponse {
    /// A page of the account's money movements, newest first.
    #[oai(status = 200)]
    Ok(Json<TransactionList>),
}

/// The request's `x-request-id` (the gateway's), for the audit log.
fn request_id(req: &poem::Request) -> Option<&str> {
    req.header("x-request-id")
}

/// The audit row of an operation by `caller` that left `account` after moving `amount`.
fn audit_entry<'a>(
    action: Action,
    caller: &'a Caller,
    req: &'a poem::Request,
    amount: Money,
    account: &crate::domain::Account,
) -> audit::Entry<'a> {
    audit::Entry {
        action,
        user_id: account.user_id,
        subject: caller.subject(),
        scopes: caller.scopes().join(" "),
        amount,
        balance_after: account.balance,
        request_id: request_id(req),
        trace_id: platform::trace::current().map(|t| t.trace_id()),
    }
}

fn account_dto(a: crate::domain::Account) -> AccountDto {
    AccountDto {
        user_id: a.user_id,
        balance: a.balance,
    }
}

fn account_data(a: crate::domain::Account) -> Json<AccountData> {
    Json(AccountData {
        data: account_dto(a),
    })
}

#[OpenApi]
impl AccountsApi {
    /// Open the user's account (one per user) with an optional opening balance (default 0).
    ///
    /// A user opens its own account (`user_id` = the token's subject); a non-zero opening
    /// balance, or an account for someone else, needs the operator scope `payments:topup`.
    /// With an `Idempotency-Key`, a retry of the same request answers the account opened by the
    /// first one; the key with a different body is a 409.
    #[oai(path = "/accounts", method = "post", tag = "ApiTags::Accounts")]
    async fn create_account(
        &self,
        caller: Caller,
        req: &poem::Request,
        /// Makes retries safe: 1..=255 printable ASCII characters, fresh for each new request,
        /// remembered per user for `IDEMPOTENCY_KEY_TTL_S` (24 h by default).
        #[oai(name = "Idempotency-Key")]
        key: KeyHeader,
        body: JsonBody<CreateAccountRequest>,
    ) -> Result<CreateAccountResponse, ApiError> {
        let user_id = body.0.user_id;
        let opening = body.0.balance.unwrap_or(Money::ZERO);
        // Money enters an account only through an operator: an opening balance is a credit.
        if !caller.has_scope(TOPUP_SCOPE) {
            caller.act_for(user_id.0)?;
            if opening != Money::ZERO {
                return Err(ApiError::forbidden(format!(
                    "a non-zero opening balance requires the {TOPUP_SCOPE} scope"
                )));
            }
        }
        let canonical = CreateAccountRequest {
            user_id,
            balance: Some(opening),
        };
        let keyed = key
            .0
            .as_ref()
            .map(|key| Keyed::new(key, user_id.0, "POST /accounts", &canonical));
        let performed = self
            .keys
            .perform(&self.pool, keyed, async |tx| {
                match store::create_account(tx, user_id, opening).await {
                    Ok(a) => {
                        let entry = audit_entry(Action::AccountOpened, &caller, req, opening, &a);
                        audit::record(tx, &entry).await?;
                        tracing::info!(user_id = %a.user_id, subject = caller.subject(), "account opened");
                        Ok(account_dto(a))
                    }
                    Err(CreateError::Exists) => Err(ApiError::conflict(format!(
                        "user_id {user_id} already has an account"
                    ))),
                    Err(CreateError::Db(e)) => Err(e.into()),
                }
            })
            .await?;
        if !performed.replayed {
            self.metrics.event("account_opened", "ok");
        }
        let replayed = performed.replay_header();
        Ok(CreateAccountResponse::Created(
            Json(AccountData {
                data: performed.value,
            }),
            replayed,
        ))
    }

    /// Add money to the account; answers the new balance. Operators only: the token needs the
    /// `payments:topup` scope (a user cannot credit itself).
    ///
    /// With an `Idempotency-Key`, a retry of the same request adds nothing and answers the
    /// balance the first one left; the key with a different body is a 409.
    #[oai(path = "/accounts/topup", method = "post", tag = "ApiTags::Accounts")]
    async fn top_up(
        &self,
        caller: Caller,
        req: &poem::Request,
        /// Makes retries safe: 1..=255 printable ASCII characters, fresh for each new top-up,
        /// remembered per user for `IDEMPOTENCY_KEY_TTL_S` (24 h by default).
        #[oai(name = "Idempotency-Key")]
        key: KeyHeader,
        body: JsonBody<TopUpRequest>,
    ) -> Result<TopUpResponse, ApiError> {
        caller.require(TOPUP_SCOPE)?;
        let topup = body.0;
        let keyed = key
            .0
            .as_ref()
            .map(|key| Keyed::new(key, topup.user_id.0, "POST /accounts/topup", &topup));
        let performed = self
            .keys
            .perform(&self.pool, keyed, async |tx| {
                match store::top_up(tx, topup.user_id, topup.amount).await {
                    Ok(a) => {
                        let entry = audit_entry(Action::TopUp, &caller, req, topup.amount.get(), &a);
                        audit::record(tx, &entry).await?;
                        tracing::info!(user_id = %a.user_id, subject = caller.subject(), "account topped up");
                        Ok(account_dto(a))
                    }
                    Err(TopUpError::NotFound) => Err(ApiError::not_found(format!(
                        "account of user_id {} not found",
                        topup.user_id
                    ))),
                    // A valid request the account's current balance cannot take: a conflict
                    // with the resource's state, not a malformed request.
                    Err(TopUpError::TooLarge) => Err(ApiError::conflict(
                        "amount would raise the balance above 1000000000000",
                    )),
                    Err(TopUpError::Db(e)) => Err(e.into()),
                }
            })
            .await?;
        if !performed.replayed {
            self.metrics.event("top_up", "ok");
        }
        let replayed = performed.replay_header();
        Ok(TopUpResponse::Ok(
            Json(AccountData {
                data: performed.value,
            }),
            replayed,
        ))
    }

    /// Read the account's balance (the owner only).
    #[oai(path = "/accounts/:user_id", method = "get", tag = "ApiTags::Accounts")]
    async fn get_account(
        &self,
        caller: Caller,
        /// The account owner's id.
        user_id: Path<UserId>,
    ) -> Result<AccountResponse, ApiError> {
        caller.act_for(user_id.0.0)?;
        match store::get_account(&self.pool, user_id.0).await? {
            Some(a) => Ok(AccountResponse::Ok(account_data(a))),
            None => Err(ApiError::not_found(format!(
                "account of user_id {} not found",
                user_id.0
            ))),
        }
    }

    /// The account's history: its opening balance, top-ups and debits (with the order), newest
    /// first, each with the balance it left (the owner only).
    #[oai(
        path = "/accounts/:user_id/transactions",
        method = "get",
        tag = "ApiTags::Accounts"
    )]
    async fn account_history(
        &self,
        caller: Caller,
        /// The account owner's id.
        user_id: Path<UserId>,
        /// Page size (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
        /// Entries to skip (default 0).
        #[oai(validator(minimum(value = "0")))]
        offset: Query<Option<i64>>,
    ) -> Result<HistoryResponse, ApiError> {
        caller.act_for(user_id.0.0)?;
        let page = Page::parse(limit.0, offset.0).map_err(ApiError::bad_request)?;
        match store::history(&self.pool, user_id.0, page).await? {
            Some(entries) => Ok(HistoryResponse::Ok(Json(TransactionList {
                data: entries.into_iter().map(TransactionDto::from).collect(),
            }))),
            None => Err(ApiError::not_found(format!(
                "account of user_id {} not found",
                user_id.0
            ))),
        }
    }
}
