//! A mailbox's forwarding and inbox rules.

use super::*;

#[async_trait]
impl MailboxRules for ExchangeClient {
    async fn mailbox_settings(
        &self,
        mailbox: &str,
    ) -> Result<Option<MailboxSettings>, RemoteError> {
        let cmdlet = Cmdlet::new("Get-Mailbox", json!({ "Identity": mailbox }))
            .on_mailbox(mailbox)
            .select(MAILBOX_SETTINGS_SELECT);
        let row: Option<MailboxSettingsRow> = self.one(cmdlet, mailbox).await?;
        Ok(row.map(|r| MailboxSettings {
            forwarding: MailboxForwarding {
                forwarding_smtp_address: r.forwarding_smtp_address,
                forwarding_address: r.forwarding_address,
                deliver_to_mailbox_and_forward: r.deliver_to_mailbox_and_forward,
            },
            info: MailboxInfo::from(r.mailbox),
        }))
    }

    async fn set_forwarding(
        &self,
        mailbox: &str,
        forwarding: &MailboxForwarding,
    ) -> Result<(), RemoteError> {
        let parameters = json!({
            "Identity": mailbox,
            "ForwardingSmtpAddress": forwarding.forwarding_smtp_address,
            "ForwardingAddress": forwarding.forwarding_address,
            "DeliverToMailboxAndForward": forwarding.deliver_to_mailbox_and_forward,
        });
        // "No settings modified" is success: the forwarding already is as asked.
        self.add(Cmdlet::new("Set-Mailbox", parameters).on_mailbox(mailbox))
            .await
    }

    async fn inbox_rules(&self, mailbox: &str) -> Result<Vec<InboxRule>, RemoteError> {
        let cmdlet = Cmdlet::new(
            "Get-InboxRule",
            json!({ "Mailbox": mailbox, "IncludeHidden": true }),
        )
        .on_mailbox(mailbox);
        let rows: Vec<InboxRuleRow> = self.query(cmdlet).await?;
        Ok(rows.into_iter().map(InboxRule::from).collect())
    }

    async fn disable_inbox_rule(&self, mailbox: &str, identity: &str) -> Result<(), RemoteError> {
        self.add(inbox_rule_cmdlet("Disable-InboxRule", mailbox, identity))
            .await
    }

    async fn enable_inbox_rule(&self, mailbox: &str, identity: &str) -> Result<(), RemoteError> {
        self.add(inbox_rule_cmdlet("Enable-InboxRule", mailbox, identity))
            .await
    }
}
