//! Who the values in permission answers name, tenant-wide: the mailbox list answers most, the
//! user list (`Get-User`) answers SIDs and `DOMAIN\sam`; the rest is asked of Exchange once per
//! value (`Get-Recipient`), however many answers show it.

use crate::error::RemoteError;
use crate::model::{Trustee, TrusteeKind};
use crate::ports::{Exchange, ExchangeUser, MailboxInfo, Recipient};
use crate::scan::is_system_principal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OnceCell;

use crate::model::is_sid;

/// A recipient an answer names: where a grant lives.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub address: String,
    pub display_name: String,
    pub recipient_type: String,
}

type Cell<T> = Arc<OnceCell<T>>;

/// A value's answer from one lookup, asked once however many answers show the value.
type Looked = Cell<Option<Recipient>>;

/// Which Exchange lookup answered a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lookup {
    Recipient,
    Group,
}

pub(super) struct Identities<'a> {
    mailboxes: &'a [MailboxInfo],
    by_identity: HashMap<String, usize>,
    /// Users by SID and SID history (upper case) and by SamAccountName (lowercase).
    by_sid: HashMap<String, &'a ExchangeUser>,
    by_sam: HashMap<String, &'a ExchangeUser>,
    /// Users by object id (lowercase).
    by_object_id: HashMap<String, &'a ExchangeUser>,
    exchange: &'a dyn Exchange,
    recipients: Mutex<HashMap<(Lookup, String), Looked>>,
    pub lookups: std::sync::atomic::AtomicU64,
}

impl<'a> Identities<'a> {
    pub fn new(
        mailboxes: &'a [MailboxInfo],
        users: &'a [ExchangeUser],
        exchange: &'a dyn Exchange,
    ) -> Identities<'a> {
        let mut by_identity = HashMap::new();
        for (i, m) in mailboxes.iter().enumerate() {
            for v in m.identities() {
                by_identity.entry(v.to_ascii_lowercase()).or_insert(i);
            }
        }
        let mut by_sid = HashMap::new();
        let mut by_sam = HashMap::new();
        let mut by_object_id = HashMap::new();
        for u in users {
            if let Some(id) = &u.external_directory_object_id {
                by_object_id.insert(id.trim().to_ascii_lowercase(), u);
            }
            for sid in u.sid.iter().chain(&u.sid_history) {
                by_sid.insert(sid.trim().to_ascii_uppercase(), u);
            }
            if let Some(sam) = &u.sam_account_name {
                by_sam.insert(sam.trim().to_ascii_lowercase(), u);
            }
        }
        Identities {
            mailboxes,
            by_identity,
            by_sid,
            by_sam,
            by_object_id,
            exchange,
            recipients: Mutex::default(),
            lookups: Default::default(),
        }
    }

    fn mailbox(&self, value: &str) -> Option<&'a MailboxInfo> {
        self.by_identity
            .get(&value.trim().to_ascii_lowercase())
            .map(|&i| &self.mailboxes[i])
    }

    /// `Get-Recipient` for `value`, once per value; a recipient Exchange cannot name (not
    /// found, ambiguous) is none.
    async fn recipient(&self, value: &str) -> Result<Option<Recipient>, RemoteError> {
        self.looked_up(Lookup::Recipient, value).await
    }

    /// `Get-Group` for `value`, once per value: a group that is no recipient (a security
    /// group that is not mail-enabled) still holds rights for its members.
    async fn group(&self, value: &str) -> Result<Option<Recipient>, RemoteError> {
        self.looked_up(Lookup::Group, value).await
    }

    async fn looked_up(&self, kind: Lookup, value: &str) -> Result<Option<Recipient>, RemoteError> {
        let key = (kind, value.trim().to_ascii_lowercase());
        let cell = self
            .recipients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let found = match kind {
                Lookup::Recipient => self.exchange.recipient(value).await,
                Lookup::Group => self.exchange.group(value).await,
            };
            match found {
                Ok(found) => Ok(found),
                Err(e) if e.is_transient() || e.is_auth() => Err(e),
                Err(e) => {
                    tracing::warn!(%value, error = %e, "a value in a permission answer could not be resolved");
                    Ok(None)
                }
            }
        })
        .await
        .cloned()
    }

    /// Where a permission's `Identity` lives; `None` when nothing has it.
    pub async fn place(&self, identity: &str) -> Result<Option<Place>, RemoteError> {
        if let Some(m) = self.mailbox(identity) {
            return Ok(Some(Place {
                address: m.address(),
                display_name: m.display_name.clone(),
                recipient_type: m.recipient_type_details.clone(),
            }));
        }
        Ok(self
            .recipient(identity)
            .await?
            .filter(|r| !r.primary_smtp_address.is_empty())
            .map(|r| Place {
                address: r.primary_smtp_address.to_ascii_lowercase(),
                display_name: r.display_name,
                recipient_type: r.recipient_type_details,
            }))
    }

    /// A user of the user list, with their mailbox's identities when they have one here.
    fn of_user(&self, u: &ExchangeUser, shown_as: Vec<String>) -> Trustee {
        let own = u
            .user_principal_name
            .as_deref()
            .or(u.external_directory_object_id.as_deref())
            .and_then(|v| self.mailbox(v));
        let upn = u
            .user_principal_name
            .clone()
            .or_else(|| own.map(|m| m.user_principal_name.clone()))
            .map(|v| v.to_ascii_lowercase());
        let address = own
            .map(|m| m.address())
            .or_else(|| {
                u.windows_email_address
                    .clone()
                    .map(|a| a.to_ascii_lowercase())
            })
            .filter(|a| !a.is_empty());
        let object_id = u
            .external_directory_object_id
            .clone()
            .or_else(|| own.and_then(|m| m.external_directory_object_id.clone()));
        Trustee {
            trustee_id: object_id
                .clone()
                .or_else(|| address.clone())
                .or_else(|| upn.clone())
                .unwrap_or_else(|| shown_as[0].clone())
                .to_ascii_lowercase(),
            kind: TrusteeKind::User,
            upn,
            object_id,
            address,
            display_name: u
                .display_name
                .clone()
                .or_else(|| own.map(|m| m.display_name.clone())),
            recipient_type: u.recipient_type_details.clone(),
            distinguished_name: u.distinguished_name.clone(),
            shown_as,
        }
    }

    /// Who a `User`/`Trustee`/delegate value names; `None` for well-known principals.
    pub async fn trustee(&self, value: &str) -> Result<Option<Trustee>, RemoteError> {
        let value = value.trim();
        if is_system_principal(value) {
            return Ok(None);
        }
        let shown_as = vec![value.to_string()];
        if let Some(m) = self.mailbox(value) {
            return Ok(Some(Trustee {
                trustee_id: m
                    .external_directory_object_id
                    .clone()
                    .unwrap_or_else(|| m.address())
                    .to_ascii_lowercase(),
                kind: TrusteeKind::User,
                upn: Some(m.user_principal_name.to_ascii_lowercase()),
                object_id: m.external_directory_object_id.clone(),
                address: Some(m.address()),
                display_name: Some(m.display_name.clone()),
                recipient_type: Some(m.recipient_type_details.clone()),
                distinguished_name: Some(m.distinguished_name.clone()).filter(|d| !d.is_empty()),
                shown_as,
            }));
        }
        let unknown = |kind| Trustee {
            trustee_id: value.to_ascii_lowercase(),
            kind,
            upn: None,
            object_id: None,
            address: value.contains('@').then(|| value.to_ascii_lowercase()),
            display_name: None,
            recipient_type: None,
            distinguished_name: None,
            shown_as: shown_as.clone(),
        };
        // A SID or `DOMAIN\sam`: the user list knows whose it is; a SID nobody has any more
        // is an orphan (a deleted user's entry).
        let user = if is_sid(value) {
            self.by_sid.get(&value.to_ascii_uppercase())
        } else {
            value
                .split_once('\\')
                .and_then(|(_, sam)| self.by_sam.get(&sam.to_ascii_lowercase()))
        };
        if let Some(u) = user {
            return Ok(Some(self.of_user(u, shown_as)));
        }
        // Not a recipient, no user: a group that is no recipient, or nobody.
        let found = match is_sid(value) {
            true => None,
            false => self.recipient(value).await?,
        };
        let found = match found {
            Some(r) => Some(r),
            None if value.contains('@') => None,
            None => self.group(value).await?,
        };
        let Some(r) = found else {
            return Ok(Some(unknown(if is_sid(value) {
                TrusteeKind::OrphanedSid
            } else if value.contains('@') {
                TrusteeKind::External
            } else {
                TrusteeKind::Unresolved
            })));
        };
        // A mail user (a hybrid user, a consultant): the user list has their UPN.
        if let Some(u) = r
            .external_directory_object_id
            .as_deref()
            .and_then(|id| self.by_object_id.get(&id.to_ascii_lowercase()))
        {
            let mut t = self.of_user(u, shown_as);
            if !r.primary_smtp_address.is_empty() {
                t.address = Some(r.primary_smtp_address.to_ascii_lowercase());
            }
            t.recipient_type = Some(r.recipient_type_details);
            return Ok(Some(t));
        }
        let address = Some(r.primary_smtp_address.to_ascii_lowercase()).filter(|a| !a.is_empty());
        let own = address.as_deref().and_then(|a| self.mailbox(a));
        let kind = if r.recipient_type_details.contains("Group") {
            TrusteeKind::Group
        } else if r.recipient_type_details.contains("Mailbox")
            || r.recipient_type_details.contains("MailUser")
            || r.recipient_type_details.eq_ignore_ascii_case("User")
        {
            TrusteeKind::User
        } else {
            TrusteeKind::Recipient
        };
        let object_id = r.external_directory_object_id.clone();
        Ok(Some(Trustee {
            trustee_id: object_id
                .clone()
                .or_else(|| address.clone())
                .unwrap_or_else(|| value.to_string())
                .to_ascii_lowercase(),
            kind,
            upn: own.map(|m| m.user_principal_name.to_ascii_lowercase()),
            object_id,
            address,
            display_name: Some(r.display_name),
            recipient_type: Some(r.recipient_type_details),
            distinguished_name: r.distinguished_name,
            shown_as,
        }))
    }
}
