//! Send As, from the recipient side: the tenant-wide listing shows every entry on every kind
//! of recipient (mailboxes, groups, contacts, mail users), including entries whose SID no
//! longer matches the trustee, which a lookup by trustee misses. The lookup by trustee runs
//! beside it as a cross-check for trustee spellings nothing here can resolve.

use super::census::Census;
use super::trustee::{is_system_principal, Principal, Resolver};
use super::{grant, indirect, Findings};
use crate::error::RemoteError;
use crate::model::PermissionType;
use crate::ports::Exchange;

pub(super) async fn find(
    census: &Census,
    resolver: &Resolver<'_>,
    exchange: &dyn Exchange,
    listed_before: super::SendAsListing,
) -> Result<Findings, RemoteError> {
    let listing = async {
        match listed_before {
            Some(listing) => listing,
            None => exchange.send_as_entries().await,
        }
    };
    let by_trustee = async {
        match census.take_early_send_as() {
            Some(read) => read,
            None => exchange.send_as_by_trustee(&census.user.upn).await,
        }
    };
    let (listing, by_trustee) = tokio::join!(listing, by_trustee);
    let listing = listing?;
    let by_trustee = match by_trustee {
        Ok(entries) => entries,
        // A user who is no Exchange recipient holds no Send As by SID.
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "Send As lookup by trustee failed; the tenant-wide listing stands alone");
            Vec::new()
        }
    };
    // What the lookup by trustee returns is the user's by SID, however it spells the trustee.
    let listed = listing.iter().map(|e| (e, None));
    let by_sid = by_trustee.iter().map(|e| (e, Some(Principal::User)));
    let mut found = Findings::default();
    for (e, known) in listed.chain(by_sid) {
        if !e.allows_send_as() || is_system_principal(&e.trustee) {
            continue;
        }
        let principal = match known {
            Some(p) => p,
            None => resolver.principal(&e.trustee).await?,
        };
        if principal == Principal::Other {
            continue;
        }
        let Some(target) = resolver.target(&e.identity).await? else {
            found.merge(Findings::error(format!(
                "a Send As entry on '{}' names no known recipient; not checked",
                e.identity
            )));
            continue;
        };
        if !census.in_scope(&target.address) {
            continue;
        }
        match (principal, e.is_inherited) {
            (Principal::User, false) => found.grants.push(grant(
                census,
                &target,
                PermissionType::SendAs,
                &e.trustee,
                vec!["SendAs".into()],
            )),
            (Principal::User, true) => found.indirect.push(indirect(
                &target,
                PermissionType::SendAs,
                "inheritance".into(),
            )),
            (Principal::Group(g), _) => found.indirect.push(indirect(
                &target,
                PermissionType::SendAs,
                format!("group {g}"),
            )),
            (Principal::Other, _) => {}
        }
    }
    Ok(found)
}
