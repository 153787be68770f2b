//! Who the run's user is and which mailboxes are in scope: read once by discovery, rebuilt by
//! verification from what discovery stored.

use super::early::EarlyLookups;
use super::{rejected, ScanError};
use crate::error::RemoteError;
use crate::model::{
    FailureCode, OrgSettings, PermissionType, ResolvedUser, RevocationRequest, RunFailure, RunMode,
};
use crate::ports::{ExchangeUser, MailboxInfo, Recipient, RecipientPermissionEntry, UserLookup};
use crate::steps::Tenant;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use tracing::warn;

/// Everything a scan knows about the user and the tenant's mailboxes.
pub(crate) struct Census {
    pub user: ResolvedUser,
    /// Every mailbox of the tenant.
    pub mailboxes: Vec<MailboxInfo>,
    /// The request's target recipients (lowercase addresses); `None`: everything.
    targets: Option<BTreeSet<String>>,
    /// Lowercase identities (UPN, address, DN, Name, Alias, object id) → the first mailbox
    /// they name: a permission answer is mapped back to its mailbox for every entry.
    by_identity: HashMap<String, usize>,
    /// The tenant-wide lookups by the user alone, read beside the mailbox list.
    early: Mutex<EarlyLookups>,
    /// Which folders of each mailbox are read for folder permissions.
    pub folders: super::folder_reach::FolderReach,
}

/// Why a run cannot act on the user a request names: nobody, or more than one user, has that
/// address in the tenant. `None` for a user found once.
pub(crate) fn unusable_user(
    lookup: &UserLookup,
    address: &str,
    org: &OrgSettings,
) -> Option<RunFailure> {
    match lookup {
        UserLookup::Found { .. } => None,
        UserLookup::NotFound => Some(RunFailure::new(
            FailureCode::UserNotFound,
            Some("user_email"),
            format!(
                "user '{address}' was not found in the tenant of company '{}' (looked up as UPN, primary SMTP address and proxy address)",
                org.company_id
            ),
        )),
        UserLookup::Ambiguous { candidates } => Some(RunFailure::new(
            FailureCode::UserAmbiguous,
            Some("user_email"),
            format!(
                "'{address}' matches {} users in the tenant of company '{}' ({}); name the user by UPN",
                candidates.len(),
                org.company_id,
                candidates.join(", ")
            ),
        )),
    }
}

impl Census {
    /// Validates the user and reads what the scans need about them and the tenant.
    pub async fn discover(
        tenant: Tenant<'_>,
        org: &OrgSettings,
        request: &RevocationRequest,
    ) -> Result<Census, ScanError> {
        if request.mode == RunMode::Cleanup {
            return Census::discover_cleanup(tenant, org, request).await;
        }
        let address = &request.user_email;
        // The mailbox listing (pages read back to back) does not wait for the user lookup, and
        // what only needs the user (Get-User, their groups) does not wait for the listing.
        let user_side = async {
            let lookup = tenant.directory.find_user(address).await?;
            let UserLookup::Found { user, .. } = &lookup else {
                // Nobody to ask about: the run is refused below.
                return Ok::<_, RemoteError>((lookup, Ok(None), Ok(Vec::new())));
            };
            let (exchange_user, groups) = tokio::join!(
                async {
                    tolerate(
                        "Get-User",
                        tenant.exchange.user(&user.user_principal_name).await,
                    )
                },
                tenant.directory.groups_of(&user.id),
            );
            Ok((lookup, exchange_user, groups))
        };
        let (user_side, mailboxes) = tokio::join!(user_side, tenant.exchange.mailboxes());
        let (lookup, exchange_user, groups) = user_side?;
        let (found, matched_by) = match lookup {
            UserLookup::Found { user, matched_by } => (user, matched_by),
            refused => {
                let failure = unusable_user(&refused, address, org)
                    .expect("a lookup that found nobody or several is refused");
                return Err(ScanError::Rejected(failure));
            }
        };
        let mailboxes = mailboxes?;
        let own = mailboxes.iter().find(|m| {
            m.external_directory_object_id
                .as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(&found.id))
                || m.user_principal_name
                    .eq_ignore_ascii_case(&found.user_principal_name)
        });
        // A user without a mailbox here (a mail user, a hybrid user) still has a DN and names.
        let upn = &found.user_principal_name;
        let recipient = match own {
            Some(_) => Ok(None),
            None => tolerate("Get-Recipient", tenant.exchange.recipient(upn).await),
        };
        let (recipient, exchange_user, groups) = (recipient?, exchange_user?, groups?);

        let mut addresses: Vec<String> = [
            Some(&found.user_principal_name),
            found.mail.as_ref(),
            own.map(|m| &m.primary_smtp_address),
            recipient.as_ref().map(|r| &r.primary_smtp_address),
            exchange_user
                .as_ref()
                .and_then(|u| u.windows_email_address.as_ref()),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .chain(found.proxy_addresses.iter().filter_map(|p| {
            p.split_once(':')
                .filter(|(kind, _)| kind.eq_ignore_ascii_case("smtp"))
                .map(|(_, a)| a.to_string())
        }))
        .filter(|a| !a.is_empty())
        .map(|a| a.to_ascii_lowercase())
        .collect();
        if matched_by != crate::model::MatchedBy::Upn {
            addresses.push(address.to_ascii_lowercase());
        }
        addresses.sort();
        addresses.dedup();
        let names = user_names(own, recipient.as_ref(), exchange_user.as_ref());
        let mut sids: Vec<String> = exchange_user
            .iter()
            .flat_map(|u| u.sid.iter().chain(&u.sid_history))
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect();
        sids.sort();
        sids.dedup();
        let mailbox_dn = own
            .map(|m| m.distinguished_name.clone())
            .or_else(|| {
                recipient
                    .as_ref()
                    .and_then(|r| r.distinguished_name.clone())
            })
            .or_else(|| {
                exchange_user
                    .as_ref()
                    .and_then(|u| u.distinguished_name.clone())
            })
            .filter(|dn| !dn.is_empty());
        let recipient_type = own
            .map(|m| m.recipient_type_details.clone())
            .or_else(|| recipient.as_ref().map(|r| r.recipient_type_details.clone()))
            .or_else(|| {
                exchange_user
                    .as_ref()
                    .and_then(|u| u.recipient_type_details.clone())
            });
        let user = ResolvedUser {
            id: found.id.clone(),
            upn: found.user_principal_name.to_ascii_lowercase(),
            display_name: found.display_name.clone(),
            addresses,
            mailbox_dn,
            mailbox_name: own.and_then(|m| m.name.clone()),
            names,
            sids,
            matched_by: Some(matched_by),
            account_enabled: found.account_enabled,
            recipient_type,
            groups,
        };
        let mut census = Census::new(user, mailboxes);
        census.targets = census.resolve_targets(tenant, org, request).await?;
        census.folders = super::folder_reach::FolderReach::of(request);
        Ok(census)
    }

    /// A cleanup run's census: no user is looked up — the trustee is the value as shown, which
    /// must name no one in the tenant now (else it is a user or recipient to revoke with a
    /// normal run, with the checks of one).
    async fn discover_cleanup(
        tenant: Tenant<'_>,
        org: &OrgSettings,
        request: &RevocationRequest,
    ) -> Result<Census, ScanError> {
        let value = request.user_email.trim();
        let (named, mailboxes) =
            tokio::join!(named_now(tenant, value), tenant.exchange.mailboxes());
        if let Some(who) = named? {
            return Err(rejected(
                FailureCode::TrusteeExists,
                "trustee",
                format!(
                    "'{value}' still names {who} in the tenant of company '{}': a cleanup removes only grants of trustees that no longer exist; revoke this one with a normal run",
                    org.company_id
                ),
            ));
        }
        let mut census = Census::new(ResolvedUser::unresolved(value), mailboxes?);
        census.targets = census.resolve_targets(tenant, org, request).await?;
        Ok(census)
    }

    fn new(user: ResolvedUser, mailboxes: Vec<MailboxInfo>) -> Census {
        let mut by_identity = HashMap::new();
        for (i, m) in mailboxes.iter().enumerate() {
            for identity in m.identities() {
                by_identity
                    .entry(identity.trim().to_ascii_lowercase())
                    .or_insert(i);
            }
        }
        Census {
            user,
            mailboxes,
            targets: None,
            by_identity,
            early: Mutex::default(),
            folders: Default::default(),
        }
    }

    /// The census reading these folders for folder permissions.
    pub fn with_folders(mut self, folders: super::folder_reach::FolderReach) -> Census {
        self.folders = folders;
        self
    }

    /// A scan shard's census: the user as discovery resolved them, and the shard's mailboxes
    /// (already in the request's scope).
    pub fn for_shard(user: ResolvedUser, mailboxes: Vec<MailboxInfo>) -> Census {
        Census::new(user, mailboxes)
    }

    /// Verification's census: the user as discovery resolved them, the mailbox list re-read
    /// (a permission answer names mailboxes by Name or GUID, which only the list maps back).
    pub async fn reread(
        tenant: Tenant<'_>,
        org: &OrgSettings,
        user: ResolvedUser,
        request: &RevocationRequest,
    ) -> Result<Census, ScanError> {
        Census::listed(tenant, org, user, request, &|_| {}, &[]).await
    }

    /// [`Census::reread`], telling `page` each page of the mailbox list as it arrives. The
    /// tenant-wide lookups that need only the user (Send As by trustee, Send on Behalf by DN)
    /// are read beside the list, not after its last page: verification's first tenant-wide
    /// read takes them.
    pub async fn reread_by_page(
        tenant: Tenant<'_>,
        org: &OrgSettings,
        user: ResolvedUser,
        request: &RevocationRequest,
        page: &(dyn for<'m> Fn(&'m [MailboxInfo]) + Send + Sync),
    ) -> Result<Census, ScanError> {
        let scope = request.effective_scope(&org.m365_permission_removal_scope);
        Census::listed(tenant, org, user, request, page, &scope).await
    }

    /// The census of the mailbox list read now, with the early lookups `early` asks for.
    async fn listed(
        tenant: Tenant<'_>,
        org: &OrgSettings,
        user: ResolvedUser,
        request: &RevocationRequest,
        page: &(dyn for<'m> Fn(&'m [MailboxInfo]) + Send + Sync),
        early: &[PermissionType],
    ) -> Result<Census, ScanError> {
        let (mailboxes, early) = tokio::join!(
            tenant.exchange.mailboxes_by_page(page),
            EarlyLookups::read(tenant.exchange, &user, early)
        );
        let mut census = Census::new(user, mailboxes?);
        census.early = Mutex::new(early);
        census.folders = super::folder_reach::FolderReach::of(request);
        census.targets = census.resolve_targets(tenant, org, request).await?;
        Ok(census)
    }

    /// The Send As lookup by trustee read beside the mailbox list, once (a second look reads
    /// the tenant again).
    pub fn take_early_send_as(&self) -> Option<Result<Vec<RecipientPermissionEntry>, RemoteError>> {
        self.early_lookups().send_as_by_trustee.take()
    }

    /// The Send on Behalf lookup read beside the mailbox list, once.
    pub fn take_early_send_on_behalf(&self) -> Option<Result<Vec<MailboxInfo>, RemoteError>> {
        self.early_lookups().send_on_behalf.take()
    }

    fn early_lookups(&self) -> std::sync::MutexGuard<'_, EarlyLookups> {
        self.early.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The addresses of the request's targets (`None`: every mailbox). A target may be a
    /// mailbox or any other recipient (Send As lives on groups too); one that is neither
    /// fails the run before anything is removed.
    async fn resolve_targets(
        &self,
        tenant: Tenant<'_>,
        org: &OrgSettings,
        request: &RevocationRequest,
    ) -> Result<Option<BTreeSet<String>>, ScanError> {
        if request.target_mailboxes.is_empty() {
            return Ok(None);
        }
        let mut targets = BTreeSet::new();
        for target in &request.target_mailboxes {
            let address = match self.mailbox(target) {
                Some(m) => Some(m.address()),
                None => recipient_address(tenant, target).await?,
            };
            let Some(address) = address else {
                return Err(rejected(
                    FailureCode::MailboxNotFound,
                    "target_mailboxes",
                    format!(
                        "target mailbox '{target}' was not found in the tenant of company '{}'",
                        org.company_id
                    ),
                ));
            };
            targets.insert(address);
        }
        Ok(Some(targets))
    }

    pub fn mailbox(&self, identity: &str) -> Option<&MailboxInfo> {
        let i = self
            .by_identity
            .get(&identity.trim().to_ascii_lowercase())?;
        Some(&self.mailboxes[*i])
    }

    /// The user's own mailbox or mail user: never a place the user holds access to others on.
    pub fn is_own(&self, address: &str) -> bool {
        self.user.is_user(address)
    }

    /// Whether grants on the recipient with this address are the request's business.
    pub fn in_scope(&self, address: &str) -> bool {
        let address = address.to_ascii_lowercase();
        !self.is_own(&address)
            && self
                .targets
                .as_ref()
                .is_none_or(|targets| targets.contains(&address))
    }

    /// The mailboxes whose permissions are read one by one. System mailboxes (discovery,
    /// arbitration, ...) hold no one's delegated access, and Graph cannot read their calendars.
    pub fn scanned_mailboxes(&self) -> Vec<&MailboxInfo> {
        self.mailboxes
            .iter()
            .filter(|m| m.holds_delegations() && self.in_scope(&m.address()))
            .collect()
    }
}

/// The names besides addresses that Exchange may show for the user, lowercase.
fn user_names(
    own: Option<&MailboxInfo>,
    recipient: Option<&Recipient>,
    user: Option<&ExchangeUser>,
) -> Vec<String> {
    let mut names: Vec<String> = [
        own.and_then(|m| m.name.clone()),
        own.and_then(|m| m.alias.clone()),
        recipient.map(|r| r.name.clone()),
        recipient.and_then(|r| r.alias.clone()),
        user.and_then(|u| u.name.clone()),
        user.and_then(|u| u.sam_account_name.clone()),
    ]
    .into_iter()
    .flatten()
    .map(|n| n.trim().to_ascii_lowercase())
    .filter(|n| !n.is_empty())
    .collect();
    names.sort();
    names.dedup();
    names
}

/// A lookup that only adds detail: a tenant that does not answer it (the object is not a
/// recipient, the app may not run the cmdlet) is carried on without; throttling is not.
fn tolerate<T>(
    what: &str,
    result: Result<Option<T>, RemoteError>,
) -> Result<Option<T>, RemoteError> {
    match result {
        Ok(found) => Ok(found),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            warn!(lookup = what, error = %e, "lookup not answered; carrying on without it");
            Ok(None)
        }
    }
}

/// The primary SMTP address (lowercase) of the recipient Exchange resolves `identity` to — by
/// any of its identities: address, proxy address, UPN, alias, name, GUID — or `None`. How a
/// target mailbox is found when it is not among the listed mailboxes (and how a restore
/// matches the mailboxes it names to the grants a run removed).
pub(crate) async fn recipient_address(
    tenant: Tenant<'_>,
    identity: &str,
) -> Result<Option<String>, RemoteError> {
    Ok(
        tolerate("Get-Recipient", tenant.exchange.recipient(identity).await)?
            .map(|r| r.primary_smtp_address.to_ascii_lowercase())
            .filter(|a| !a.is_empty()),
    )
}

/// Whom `value` names in the tenant now, if anyone: a user by SID (`Get-User`) or by address
/// (Graph), any recipient by name or address (`Get-Recipient`), or any group, mail-enabled or
/// not, by name, address, id or SID (`Get-Group`: a security group is no recipient, yet it
/// holds rights for its members). A value Exchange cannot resolve cleanly (several matches, a
/// refused lookup) may name someone: it is never taken for dead.
async fn named_now(tenant: Tenant<'_>, value: &str) -> Result<Option<String>, RemoteError> {
    if crate::model::is_sid(value) {
        if let Some(user) = tenant.exchange.user(value).await? {
            let name = user
                .user_principal_name
                .unwrap_or_else(|| value.to_string());
            return Ok(Some(format!("user {name}")));
        }
    }
    if value.contains('@') {
        if let UserLookup::Found { user, .. } = tenant.directory.find_user(value).await? {
            return Ok(Some(format!("user {}", user.user_principal_name)));
        }
    }
    let recipient = tenant.exchange.recipient(value).await;
    if let Some(named) = unless_dead(recipient, |r| {
        format!(
            "recipient {} ({})",
            r.primary_smtp_address, r.recipient_type_details
        )
    })? {
        return Ok(Some(named));
    }
    let group = tenant.exchange.group(value).await;
    unless_dead(group, |g| {
        format!("group {} ({})", g.display_name, g.recipient_type_details)
    })
}

/// What a lookup of a value says about whether it names someone: the one it found, nothing
/// (`None`: dead as far as this lookup knows), or — when the lookup could not answer cleanly —
/// that it may name someone.
fn unless_dead(
    found: Result<Option<Recipient>, RemoteError>,
    describe: impl Fn(&Recipient) -> String,
) -> Result<Option<String>, RemoteError> {
    match found {
        Ok(Some(r)) => Ok(Some(describe(&r))),
        Ok(None) => Ok(None),
        Err(e) if e.is_transient() || e.is_auth() => Err(e),
        // "matches multiple entries", a cmdlet refused, and the like: it may name someone;
        // never cleaned up.
        Err(e) => Ok(Some(format!(
            "something Exchange cannot resolve cleanly ({})",
            e.reason()
        ))),
    }
}
