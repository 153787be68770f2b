//! Per-company organizational variables (product.md §2).

use super::PermissionType;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PsaKind {
    #[default]
    Connectwise,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSettings {
    pub company_id: String,
    pub company_name: String,
    pub tenant_id: String,
    /// The PSA's identifier of the company (ConnectWise `company.identifier`).
    pub psa_company: String,
    #[serde(default)]
    pub psa_kind: PsaKind,
    pub m365_permission_ticket_board: String,
    #[serde(default)]
    pub m365_permission_removal_scope: Vec<PermissionType>,
    #[serde(default)]
    pub m365_permission_notification_recipients: Vec<String>,
    pub notification_sender: String,
}
