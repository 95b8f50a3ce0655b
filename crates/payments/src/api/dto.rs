//! Request and response bodies of the accounts API, exactly as SPEC §2 shows them.

use contract::money::PositiveMoney;
use contract::{Money, UserId};
use poem_openapi::Object;
use serde::Deserialize;

/// Body of POST /accounts.
#[derive(Debug, Object, Deserialize)]
// A field the API does not know is refused, naming it: a typo must not silently default.
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    /// The owner (UUID); one account per user.
    pub user_id: UserId,
    /// Opening balance, >= 0 (default 0).
    pub balance: Option<Money>,
}

/// Body of POST /accounts/topup.
#[derive(Debug, Object, Deserialize)]
// A field the API does not know is refused, naming it: a typo must not silently default.
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// The owner (UUID).
    pub user_id: UserId,
    /// How much to add: greater than 0, at most 2 decimals.
    pub amount: PositiveMoney,
}

/// An account as the API shows it.
#[derive(Debug, Object)]
#[oai(rename = "Account")]
pub struct AccountDto {
    /// The owner.
    pub user_id: UserId,
    /// Current balance.
    pub balance: Money,
}

/// `{"data": account}`.
#[derive(Debug, Object)]
pub struct AccountData {
    /// The account.
    pub data: AccountDto,
}
