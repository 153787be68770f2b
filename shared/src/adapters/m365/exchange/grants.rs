//! Full Access, Send As and Send on Behalf removed and put back.

use super::*;

#[async_trait]
impl ExchangeGrants for ExchangeClient {
    async fn remove_full_access(
        &self,
        mailbox: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove(full_access_cmdlet(
            "Remove-MailboxPermission",
            mailbox,
            user,
            json!({ "Confirm": false }),
        ))
        .await
    }

    async fn remove_send_as(
        &self,
        recipient: &str,
        recipient_type: Option<&str>,
        trustee: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove(send_as_cmdlet(
            "Remove-RecipientPermission",
            recipient,
            recipient_type,
            trustee,
        ))
        .await
    }

    async fn remove_send_on_behalf(
        &self,
        mailbox: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove(send_on_behalf_cmdlet(mailbox, "remove", user))
            .await
    }

    async fn add_full_access(&self, mailbox: &str, user: &str) -> Result<(), RemoteError> {
        // No AutoMapping: Exchange Online does not show what the removed grant had, so the
        // grant comes back with Exchange's default (the restore's result says so).
        self.add(full_access_cmdlet(
            "Add-MailboxPermission",
            mailbox,
            user,
            json!({}),
        ))
        .await
    }

    async fn add_send_as(
        &self,
        recipient: &str,
        recipient_type: Option<&str>,
        trustee: &str,
    ) -> Result<(), RemoteError> {
        self.add(send_as_cmdlet(
            "Add-RecipientPermission",
            recipient,
            recipient_type,
            trustee,
        ))
        .await
    }

    async fn add_send_on_behalf(&self, mailbox: &str, user: &str) -> Result<(), RemoteError> {
        self.add(send_on_behalf_cmdlet(mailbox, "add", user)).await
    }
}
