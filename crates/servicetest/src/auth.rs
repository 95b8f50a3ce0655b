//! Calling a service as the gateway would with `AUTH=jwt`: the identity signed with the secret
//! the two share, so a service's authorization rules are tested on the service itself.

use platform::auth::{Identity, InternalSecret, ServiceAuth};
use reqwest::{Method, Response};
use serde_json::Value;

use crate::ServiceUnderTest;

/// The internal secret of the services these suites start with authentication on.
pub const TEST_SECRET: &str = "servicetest secret, long enough for HMAC-SHA256";

/// The service's auth settings with [`TEST_SECRET`].
pub fn secured() -> ServiceAuth {
    ServiceAuth::Internal(InternalSecret::parse(TEST_SECRET).expect("test secret is long enough"))
}

/// A user identity (`sub` = `user`) with `scopes`.
pub fn user(user: uuid::Uuid, scopes: &[&str]) -> Identity {
    Identity {
        subject: user.to_string(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The identity headers the gateway would put on `method path` for `who`, signed now with
/// [`TEST_SECRET`]; a test adds its own headers to them.
pub fn signed(who: &Identity, method: &Method, path: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    let secret = InternalSecret::parse(TEST_SECRET).expect("test secret is long enough");
    platform::auth::attach(
        &mut headers,
        &secret,
        who,
        method,
        path,
        platform::auth::now_unix(),
    );
    headers
}

impl ServiceUnderTest {
    /// Restarts the service with `AUTH=jwt` and [`TEST_SECRET`].
    pub async fn secure(&mut self) {
        self.restart_with(|settings| settings.auth = secured())
            .await;
    }

    /// `method path` (with a JSON `body`) as `who`, signed like the gateway signs it; `None`
    /// sends no identity at all.
    pub async fn as_caller(
        &self,
        who: Option<&Identity>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.address));
        if let Some(who) = who {
            request = request.headers(signed(who, &method, path));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }
}
