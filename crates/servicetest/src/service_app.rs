//! [`service_app!`](crate::service_app): a service's own test app type, as a thin newtype over
//! [`ServiceUnderTest`](crate::ServiceUnderTest).
//!
//! Why a newtype, and why a macro: each service's tests add steps of their own
//! (`app.create_order(..)`, `app.create_account(..)`), and Rust allows inherent methods only on a
//! type of the same crate, so each test crate needs a type of its own; the macro writes the
//! `Deref` plumbing and the constructors once instead of once per service.

/// Declares `$name`, a running service of the caller's test crate: a newtype over
/// [`ServiceUnderTest`](crate::ServiceUnderTest) that derefs (also mutably) to it, so every
/// generic method and field is at hand and the crate can add its own steps in `impl $name`.
///
/// `$service` (a [`Service`](crate::Service)) says which service `$name::spawn()` and
/// `$name::launch(brokers)` start; `$name::stop(self)` stops it cleanly and drops its database.
///
/// ```ignore
/// servicetest::service_app! {
///     /// A running orders service.
///     pub struct TestApp = Service::new("orders", orders::startup::run);
/// }
/// impl TestApp {
///     pub async fn create_order(&self /* … */) { /* … */ }
/// }
/// ```
#[macro_export]
macro_rules! service_app {
    ($(#[$attr:meta])* $vis:vis struct $name:ident = $service:expr;) => {
        $(#[$attr])*
        $vis struct $name($crate::ServiceUnderTest);

        impl ::std::ops::Deref for $name {
            type Target = $crate::ServiceUnderTest;

            fn deref(&self) -> &$crate::ServiceUnderTest {
                &self.0
            }
        }

        impl ::std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $crate::ServiceUnderTest {
                &mut self.0
            }
        }

        impl $name {
            /// Starts the service on port 0 with a fresh database and fresh topics, and returns
            /// once `GET /health` answers 200 (database migrated, topics created, broker
            /// reachable).
            $vis async fn spawn() -> Self {
                Self($crate::ServiceUnderTest::spawn($service).await)
            }

            /// Starts the service against the broker at `brokers` with a fresh database and
            /// fresh topics, without waiting for it to become healthy.
            $vis async fn launch(brokers: &str) -> Self {
                Self($crate::ServiceUnderTest::launch($service, brokers).await)
            }

            /// Stops the service cleanly and drops its database (see
            /// `servicetest::ServiceUnderTest::stop`).
            $vis async fn stop(self) {
                self.0.stop().await;
            }
        }
    };
}
