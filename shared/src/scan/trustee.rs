//! Who a `User`/`Trustee` value or a permission's `Identity` names. Exchange shows trustees
//! as UPN, SMTP address, Name (often the object id), `DOMAIN\sam` or SID, and recipients by
//! Name or GUID: matched against what the census knows, else asked of Exchange once each.

use super::census::Census;
use crate::error::RemoteError;
use crate::model::DirectoryGroup;
use crate::ports::{Exchange, Recipient};
use std::collections::HashMap;
use std::sync::Mutex;
use tracing::warn;

/// Who a trustee value names, as far as this run is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    User,
    /// A group the user is a member of (its display name).
    Group(String),
    Other,
}

/// A recipient a permission lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub address: String,
    pub display_name: String,
    pub recipient_type: String,
}

impl Target {
    pub fn is_shared(&self) -> bool {
        self.recipient_type.eq_ignore_ascii_case("SharedMailbox")
    }
}

/// Values that name no person: well-known principals.
pub(crate) fn is_system_principal(value: &str) -> bool {
    let v = value.trim().to_ascii_uppercase();
    v.starts_with("NT AUTHORITY\\") || v == "NULL SID" || v.is_empty()
}

fn is_sid(value: &str) -> bool {
    value.trim().to_ascii_uppercase().starts_with("S-1-")
}

/// Resolves trustees and recipients for one scan, asking Exchange at most once per value.
pub(crate) struct Resolver<'a> {
    census: &'a Census,
    exchange: &'a dyn Exchange,
    principals: Mutex<HashMap<String, Principal>>,
    recipients: Mutex<HashMap<String, Option<Target>>>,
}

impl<'a> Resolver<'a> {
    pub fn new(census: &'a Census, exchange: &'a dyn Exchange) -> Resolver<'a> {
        Resolver {
            census,
            exchange,
            principals: Mutex::default(),
            recipients: Mutex::default(),
        }
    }

    fn group(&self, value: &str) -> Option<&'a DirectoryGroup> {
        let v = value.trim();
        self.census.user.groups.iter().find(|g| {
            g.display_name.eq_ignore_ascii_case(v)
                || g.id.eq_ignore_ascii_case(v)
                || g.mail.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(v))
        })
    }

    /// Who `value` names, without asking anyone; `None` when only Exchange can tell.
    fn known_principal(&self, value: &str) -> Option<Principal> {
        if self.census.user.is_user(value) {
            return Some(Principal::User);
        }
        if let Some(g) = self.group(value) {
            return Some(Principal::Group(g.display_name.clone()));
        }
        // An address or SID that is none of the user's is someone else's; so is an orphan.
        if value.contains('@') || is_sid(value) || is_system_principal(value) {
            return Some(Principal::Other);
        }
        None
    }

    /// Who a `User`/`Trustee` value names. A name that matches several recipients is never
    /// taken for the user (display names collide).
    pub async fn principal(&self, value: &str) -> Result<Principal, RemoteError> {
        if let Some(known) = self.known_principal(value) {
            return Ok(known);
        }
        let key = value.trim().to_ascii_lowercase();
        if let Some(hit) = lock(&self.principals).get(&key) {
            return Ok(hit.clone());
        }
        let principal = match self.exchange.recipient(value).await {
            Ok(Some(r)) => self.principal_of(&r),
            Ok(None) => Principal::Other,
            Err(e) if !e.is_transient() => {
                warn!(trustee = %value, error = %e, "trustee could not be resolved to one recipient; left alone");
                Principal::Other
            }
            Err(e) => return Err(e),
        };
        lock(&self.principals).insert(key, principal.clone());
        Ok(principal)
    }

    fn principal_of(&self, r: &Recipient) -> Principal {
        let user = &self.census.user;
        let is_user = user.is_user(&r.primary_smtp_address)
            || r.external_directory_object_id
                .as_deref()
                .is_some_and(|id| user.is_user(id))
            || r.distinguished_name
                .as_deref()
                .is_some_and(|dn| user.is_user(dn));
        if is_user {
            return Principal::User;
        }
        [
            r.external_directory_object_id.as_deref(),
            Some(r.primary_smtp_address.as_str()),
        ]
        .into_iter()
        .flatten()
        .find_map(|v| self.group(v))
        .map_or(Principal::Other, |g| {
            Principal::Group(g.display_name.clone())
        })
    }

    /// The recipient an answer's `Identity` names: a mailbox of the list, else whatever
    /// Exchange resolves it to (a group, contact or mail user). `None` when nothing has it.
    pub async fn target(&self, identity: &str) -> Result<Option<Target>, RemoteError> {
        if let Some(m) = self.census.mailbox(identity) {
            return Ok(Some(Target {
                address: m.address(),
                display_name: m.display_name.clone(),
                recipient_type: m.recipient_type_details.clone(),
            }));
        }
        let key = identity.trim().to_ascii_lowercase();
        if let Some(hit) = lock(&self.recipients).get(&key) {
            return Ok(hit.clone());
        }
        let target = match self.exchange.recipient(identity).await {
            Ok(found) => found
                .filter(|r| !r.primary_smtp_address.is_empty())
                .map(|r| Target {
                    address: r.primary_smtp_address.to_ascii_lowercase(),
                    display_name: r.display_name,
                    recipient_type: r.recipient_type_details,
                }),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                warn!(%identity, error = %e, "recipient could not be resolved");
                None
            }
        };
        lock(&self.recipients).insert(key, target.clone());
        Ok(target)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
