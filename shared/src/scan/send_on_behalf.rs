//! Send on Behalf: one filtered tenant-wide lookup by the user's distinguished name, which a
//! mail user or a hybrid user (mailbox on premises) has too. The mailbox list's own
//! `GrantSendOnBehalfTo` values back it up.

use super::census::Census;
use super::trustee::Target;
use super::{grant, Findings};
use crate::error::RemoteError;
use crate::model::{NotChecked, NotCheckedReason, PermissionType};
use crate::ports::{Exchange, MailboxInfo};

pub(super) async fn find(
    census: &Census,
    exchange: &dyn Exchange,
) -> Result<Findings, RemoteError> {
    let Some(dn) = census.user.mailbox_dn.as_deref() else {
        return Ok(Findings {
            not_checked: vec![NotChecked {
                permission_type: PermissionType::SendOnBehalf,
                reason: NotCheckedReason::CannotCheck,
                detail: Some(format!(
                    "{} has no distinguished name in Exchange (neither a mailbox nor a mail user), so no Send on Behalf lookup is possible",
                    census.user.upn
                )),
            }],
            ..Findings::default()
        });
    };
    let filtered = match census.take_early_send_on_behalf() {
        Some(read) => read?,
        None => exchange.mailboxes_with_send_on_behalf(dn).await?,
    };
    let listed = census.mailboxes.iter().filter(|m| {
        m.grant_send_on_behalf_to
            .iter()
            .any(|d| census.user.is_user(d))
    });
    let mut found = Findings::default();
    for m in filtered.iter().chain(listed) {
        // The filtered answer's mailbox, as the mailbox list knows it.
        let m: &MailboxInfo = census.mailbox(&m.distinguished_name).unwrap_or(m);
        if !census.in_scope(&m.address()) {
            continue;
        }
        let target = Target {
            address: m.address(),
            display_name: m.display_name.clone(),
            recipient_type: m.recipient_type_details.clone(),
        };
        found.grants.push(grant(
            census,
            &target,
            PermissionType::SendOnBehalf,
            &census.user.upn,
            vec!["SendOnBehalf".into()],
        ));
    }
    Ok(found)
}
