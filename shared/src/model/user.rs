//! Who a run is about: the directory user the request's address resolved to, and his groups.

use serde::{Deserialize, Serialize};

/// How the address the request named was matched to a directory user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    Upn,
    Mail,
    ProxyAddress,
}

/// A group the user is a member of (directly or through nesting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryGroup {
    pub id: String,
    pub display_name: String,
    pub mail: Option<String>,
}

/// The user as the tenant knows them, resolved by discovery: every value a permission answer
/// may name them by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedUser {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    /// Every address the tenant may use for this user (UPN, primary SMTP, mail, proxy
    /// addresses), lowercase.
    pub addresses: Vec<String>,
    /// The user's distinguished name: of their mailbox, or of their mail user when their
    /// mailbox is elsewhere (what the Send on Behalf filter needs).
    #[serde(default)]
    pub mailbox_dn: Option<String>,
    /// Exchange `Name` of the user's mailbox.
    #[serde(default)]
    pub mailbox_name: Option<String>,
    /// Other names Exchange may show: Name, alias, SamAccountName (lowercase).
    #[serde(default)]
    pub names: Vec<String>,
    /// The user's SID and SID history (upper case).
    #[serde(default)]
    pub sids: Vec<String>,
    #[serde(default)]
    pub matched_by: Option<MatchedBy>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// Exchange's RecipientTypeDetails of the user (`UserMailbox`, `MailUser`, `User`).
    #[serde(default)]
    pub recipient_type: Option<String>,
    #[serde(default)]
    pub groups: Vec<DirectoryGroup>,
}

/// Whether a trustee value is a SID (`S-1-5-21-…`).
pub fn is_sid(value: &str) -> bool {
    value.trim().to_ascii_uppercase().starts_with("S-1-")
}

impl ResolvedUser {
    /// A cleanup run's trustee: nothing but the value Exchange or Graph shows — a SID, a name
    /// or an address — which permission answers are matched against.
    pub fn unresolved(value: &str) -> ResolvedUser {
        let v = value.trim().to_ascii_lowercase();
        ResolvedUser {
            id: v.clone(),
            upn: value.trim().to_string(),
            display_name: value.trim().to_string(),
            addresses: if v.contains('@') {
                vec![v.clone()]
            } else {
                Vec::new()
            },
            mailbox_dn: None,
            mailbox_name: None,
            sids: if is_sid(&v) {
                vec![v.to_ascii_uppercase()]
            } else {
                Vec::new()
            },
            names: vec![v],
            matched_by: None,
            account_enabled: None,
            recipient_type: None,
            groups: Vec::new(),
        }
    }

    /// Whether a trustee value from a permission answer names this user: an address, the
    /// object id, the DN, a name, a SID, or `DOMAIN\sam`.
    pub fn is_user(&self, value: &str) -> bool {
        let v = value.trim().to_ascii_lowercase();
        if v.is_empty() {
            return false;
        }
        let named = |n: &str| {
            self.names.iter().any(|x| *x == n)
                || self
                    .mailbox_name
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(n))
        };
        self.addresses.contains(&v)
            || v == self.id.to_ascii_lowercase()
            || self
                .mailbox_dn
                .as_deref()
                .is_some_and(|dn| dn.eq_ignore_ascii_case(&v))
            || self.sids.iter().any(|s| s.eq_ignore_ascii_case(&v))
            || named(&v)
            || v.split_once('\\').is_some_and(|(domain, sam)| {
                !domain.is_empty() && !domain.contains(' ') && named(sam)
            })
    }
}
