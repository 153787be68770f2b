//! The HTTP core's token cache: one slot per login, tenant, app and scope, so concurrent callers
//! wait for one fetch instead of each asking for a token (the fetch itself is in `token`).

use crate::config::Secret;
use crate::error::RemoteError;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub(crate) login: String,
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
}

pub(crate) struct CachedToken {
    pub(crate) token: Secret,
    pub(crate) renew_at: Instant,
}

/// One slot per key; a caller holds the slot's lock while fetching, so concurrent callers
/// wait for that one fetch instead of each asking for a token.
type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Slot>>,
}

impl TokenCache {
    /// The token under `key`, unless it is due for renewal or is `stale` (a token a service
    /// refused); else what `fetch` brings, kept for the next callers.
    pub(crate) async fn get<F, Fut>(
        &self,
        key: TokenKey,
        stale: Option<&Secret>,
        fetch: F,
    ) -> Result<Secret, RemoteError>
    where
        F: FnOnce(TokenKey) -> Fut,
        Fut: Future<Output = Result<CachedToken, RemoteError>>,
    {
        let slot = self.slot(&key);
        let mut cached = slot.lock().await;
        // A token a service refused is replaced, unless a concurrent caller already did.
        let usable = |c: &&CachedToken| Instant::now() < c.renew_at && Some(&c.token) != stale;
        if let Some(valid) = cached.as_ref().filter(usable) {
            return Ok(valid.token.clone());
        }
        let fresh = fetch(key).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    fn slot(&self, key: &TokenKey) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }
}
