//! Every calendar of a mailbox through Graph: `GET /users/{id}/calendars`, and each calendar's
//! `calendarPermissions` (the default calendar's are the same entries as `/calendar/…`).

use super::graph::GraphClient;
use crate::error::RemoteError;
use crate::ports::{CalendarInfo, CalendarPermission, Calendars, RemovalOutcome};
use async_trait::async_trait;

fn calendar_path(calendar_id: &str) -> String {
    format!("calendars/{}", urlencoding::encode(calendar_id))
}

#[async_trait]
impl Calendars for GraphClient {
    async fn calendars(&self, mailbox: &str) -> Result<Vec<CalendarInfo>, RemoteError> {
        self.calendar_list(mailbox).await
    }

    async fn permissions_of(
        &self,
        mailbox: &str,
        calendar_id: &str,
    ) -> Result<Vec<CalendarPermission>, RemoteError> {
        self.permissions_at(mailbox, &calendar_path(calendar_id))
            .await
    }

    async fn remove_permission_of(
        &self,
        mailbox: &str,
        calendar_id: &str,
        permission_id: &str,
    ) -> Result<RemovalOutcome, RemoteError> {
        self.remove_permission_at(mailbox, &calendar_path(calendar_id), permission_id)
            .await
    }

    async fn add_permission_of(
        &self,
        mailbox: &str,
        calendar_id: &str,
        address: &str,
        role: &str,
    ) -> Result<(), RemoteError> {
        self.add_permission_at(mailbox, &calendar_path(calendar_id), address, role)
            .await
    }
}
