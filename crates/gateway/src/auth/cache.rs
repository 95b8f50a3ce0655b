//! Tokens already verified, so a client's second request with the same token costs a hash and
//! a lookup instead of a signature check (measured: the check was a quarter of the closed-loop
//! throughput on two cores, docs/PERFORMANCE.md).
//!
//! Invariants: only a token that passed every check is remembered, under the SHA-256 of its
//! exact text (equal digests mean the same bytes, so the same signature and claims); an entry
//! answers only until the token's own `exp` (plus the leeway the full check allows) and at most
//! [`REMEMBER_FOR`] after it was verified, so a key removed from the JWKS stops admitting its
//! tokens within that time of the reload that dropped it; the map holds at most [`MAX_ENTRIES`]
//! (past that, expired entries go, then everything), so memory is bounded whatever clients send.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use platform::auth::Identity;
use sha2::{Digest, Sha256};

/// How long a verified token is taken on trust before it is checked again.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30);

/// Most tokens remembered at once (≈ 150 bytes each).
pub const MAX_ENTRIES: usize = 50_000;

struct Entry {
    identity: Identity,
    /// The token's `exp` plus the leeway, in Unix seconds.
    valid_until: u64,
    /// When it was verified.
    at: Instant,
}

/// The remembered tokens of one verifier.
#[derive(Default)]
pub struct Verified {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

/// The key a token is remembered under.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Verified {
    /// The identity of the token with `digest`, if it was verified within [`REMEMBER_FOR`] and
    /// is still within its `exp` at `now` (Unix seconds).
    pub fn get(&self, digest: &[u8; 32], now: u64) -> Option<Identity> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get(digest)?;
        (entry.at.elapsed() < REMEMBER_FOR && now <= entry.valid_until)
            .then(|| entry.identity.clone())
    }

    /// Remembers a token that passed every check, valid until `valid_until` (Unix seconds).
    pub fn insert(&self, digest: [u8; 32], identity: Identity, valid_until: u64, now: u64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.at.elapsed() < REMEMBER_FOR && now <= e.valid_until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            digest,
            Entry {
                identity,
                valid_until,
                at: Instant::now(),
            },
        );
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Identity {
        Identity {
            subject: "u".into(),
            scopes: vec![],
        }
    }

    #[test]
    fn a_remembered_token_answers_until_its_expiry_only() {
        let cache = Verified::default();
        let d = digest("a.b.c");
        assert!(cache.get(&d, 100).is_none());
        cache.insert(d, who(), 200, 100);
        assert_eq!(cache.get(&d, 200), Some(who()));
        assert!(cache.get(&d, 201).is_none());
        assert!(cache.get(&digest("a.b.d"), 100).is_none());
    }

    #[test]
    fn the_map_never_grows_past_its_bound() {
        let cache = Verified::default();
        for i in 0..MAX_ENTRIES + 10 {
            // Already expired at insertion time: the sweep may drop them all.
            cache.insert(digest(&i.to_string()), who(), 0, 1);
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
