//! HTTP operations of the payments service; the OpenAPI document is generated from this file.
//!
//! Handlers only translate: DTO → domain value (400 naming the field on failure) → store →
//! response DTO.

mod dto;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use sqlx::PgPool;

use contract::{Money, UserId};
use platform::ApiError;
use platform::body::JsonBody;

use crate::store::{self, CreateError, TopUpError};
pub use dto::{AccountData, AccountDto, CreateAccountRequest, TopUpRequest};

#[derive(Tags)]
enum ApiTags {
    /// One account per user: open, top up, read the balance.
    Accounts,
}

/// The accounts API.
pub struct AccountsApi {
    pool: PgPool,
}

impl AccountsApi {
    /// An API over the payments database.
    pub fn new(pool: PgPool) -> Self {
        AccountsApi { pool }
    }
}

/// Answers of POST /accounts.
#[derive(ApiResponse)]
pub enum CreateAccountResponse {
    /// Opened.
    #[oai(status = 201)]
    Created(Json<AccountData>),
}

/// Answers of POST /accounts/topup and GET /accounts/{user_id}.
#[derive(ApiResponse)]
pub enum AccountResponse {
    /// The account with its current balance.
    #[oai(status = 200)]
    Ok(Json<AccountData>),
}

fn account_data(a: crate::domain::Account) -> Json<AccountData> {
    Json(AccountData {
        data: AccountDto {
            user_id: a.user_id,
            balance: a.balance,
        },
    })
}

#[OpenApi]
impl AccountsApi {
    /// Open the user's account (one per user) with an optional opening balance (default 0).
    #[oai(path = "/accounts", method = "post", tag = "ApiTags::Accounts")]
    async fn create_account(
        &self,
        body: JsonBody<CreateAccountRequest>,
    ) -> Result<CreateAccountResponse, ApiError> {
        let opening = body.0.balance.unwrap_or(Money::ZERO);
        match store::create_account(&self.pool, body.0.user_id, opening).await {
            Ok(a) => {
                tracing::info!(user_id = %a.user_id, "account opened");
                Ok(CreateAccountResponse::Created(account_data(a)))
            }
            Err(CreateError::Exists) => Err(ApiError::conflict(format!(
                "user_id {} already has an account",
                body.0.user_id
            ))),
            Err(CreateError::Db(e)) => Err(e.into()),
        }
    }

    /// Add money to the account; answers the new balance.
    #[oai(path = "/accounts/topup", method = "post", tag = "ApiTags::Accounts")]
    async fn top_up(&self, body: JsonBody<TopUpRequest>) -> Result<AccountResponse, ApiError> {
        let req = body.0;
        match store::top_up(&self.pool, req.user_id, req.amount).await {
            Ok(a) => Ok(AccountResponse::Ok(account_data(a))),
            Err(TopUpError::NotFound) => Err(ApiError::not_found(format!(
                "account of user_id {} not found",
                req.user_id
            ))),
            // A valid request the account's current balance cannot take: a conflict with the
            // resource's state, not a malformed request.
            Err(TopUpError::TooLarge) => Err(ApiError::conflict(
                "amount would raise the balance above 1000000000000",
            )),
            Err(TopUpError::Db(e)) => Err(e.into()),
        }
    }

    /// Read the account's balance.
    #[oai(path = "/accounts/:user_id", method = "get", tag = "ApiTags::Accounts")]
    async fn get_account(
        &self,
        /// The account owner's id.
        user_id: Path<UserId>,
    ) -> Result<AccountResponse, ApiError> {
        match store::get_account(&self.pool, user_id.0).await? {
            Some(a) => Ok(AccountResponse::Ok(account_data(a))),
            None => Err(ApiError::not_found(format!(
                "account of user_id {} not found",
                user_id.0
            ))),
        }
    }
}
