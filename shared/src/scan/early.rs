//! The tenant-wide lookups that need only the user, not the mailbox list: verification knows
//! the user before it re-reads the list, so it reads them beside the list's pages instead of
//! after the last one (they were the last calls of a verification, one round trip on their own).

use crate::error::RemoteError;
use crate::model::{PermissionType, ResolvedUser};
use crate::ports::{Exchange, MailboxInfo, RecipientPermissionEntry};

/// What was read early; each is taken once, by the first tenant-wide scan that needs it (a
/// continuation whose tenant-wide part an earlier invocation saved leaves them untaken: two
/// calls, against a round trip at the end of every verification).
#[derive(Default)]
pub(crate) struct EarlyLookups {
    pub send_as_by_trustee: Option<Result<Vec<RecipientPermissionEntry>, RemoteError>>,
    pub send_on_behalf: Option<Result<Vec<MailboxInfo>, RemoteError>>,
}

impl EarlyLookups {
    /// Reads the lookups `scope` asks for, as [`super::tenant_wide`] would.
    pub async fn read(
        exchange: &dyn Exchange,
        user: &ResolvedUser,
        scope: &[PermissionType],
    ) -> EarlyLookups {
        let send_as = async {
            match scope.contains(&PermissionType::SendAs) {
                true => Some(exchange.send_as_by_trustee(&user.upn).await),
                false => None,
            }
        };
        let send_on_behalf = async {
            match (
                scope.contains(&PermissionType::SendOnBehalf),
                user.mailbox_dn.as_deref(),
            ) {
                (true, Some(dn)) => Some(exchange.mailboxes_with_send_on_behalf(dn).await),
                _ => None,
            }
        };
        let (send_as_by_trustee, send_on_behalf) = tokio::join!(send_as, send_on_behalf);
        EarlyLookups {
            send_as_by_trustee,
            send_on_behalf,
        }
    }
}
