//! Identity actions on Microsoft Entra ID through Graph: what a contain run does to the user's
//! sign-in and consents before it touches any mailbox grant, and what a restore puts back.

use crate::error::RemoteError;
use crate::ports::RemovalOutcome;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The user as the identity actions need him (`GET /users/{id}?$select=...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityUser {
    pub id: String,
    pub user_principal_name: String,
    pub account_enabled: Option<bool>,
    /// Synced from on-premises Active Directory: the next sync sets `accountEnabled` back.
    pub on_premises_sync_enabled: bool,
}

/// A delegated permission grant (`oAuth2PermissionGrant`): a client app's scopes on a
/// resource API, for one user (`consentType` `Principal`) or for all (`AllPrincipals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGrant {
    pub id: String,
    /// The client app's service principal (object id, not appId).
    pub client_id: String,
    pub consent_type: String,
    pub principal_id: Option<String>,
    /// The resource API's service principal (Microsoft Graph, Office 365 Exchange Online, ...).
    pub resource_id: String,
    /// Space-separated delegated scopes.
    pub scope: String,
}

impl ConsentGrant {
    /// The user's own consent (not an admin's consent for all users).
    pub fn is_users_own(&self, user_id: &str) -> bool {
        self.consent_type.eq_ignore_ascii_case("Principal")
            && self
                .principal_id
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(user_id))
    }
}

/// Microsoft Entra ID: sessions, sign-in, delegated consents and user risk.
#[async_trait]
pub trait IdentityActions: Send + Sync {
    /// The user by object id or UPN, with `accountEnabled` and `onPremisesSyncEnabled`.
    async fn identity_user(&self, user: &str) -> Result<IdentityUser, RemoteError>;
    /// `POST /users/{id}/revokeSignInSessions`: refresh tokens and session cookies stop.
    async fn revoke_sign_in_sessions(&self, user_id: &str) -> Result<(), RemoteError>;
    /// `PATCH /users/{id}` with `accountEnabled`.
    async fn set_account_enabled(&self, user_id: &str, enabled: bool) -> Result<(), RemoteError>;
    /// The delegated grants that name the user (every page).
    async fn consent_grants(&self, user_id: &str) -> Result<Vec<ConsentGrant>, RemoteError>;
    /// The display name of a service principal (a grant's client app); `None` when gone.
    async fn app_name(&self, service_principal_id: &str) -> Result<Option<String>, RemoteError>;
    /// `DELETE /oauth2PermissionGrants/{id}`.
    async fn delete_consent_grant(&self, grant_id: &str) -> Result<RemovalOutcome, RemoteError>;
    /// Restore: `POST /oauth2PermissionGrants` with the grant's clientId, consentType,
    /// principalId, resourceId and scope; the new grant's id.
    async fn create_consent_grant(&self, grant: &ConsentGrant) -> Result<String, RemoteError>;
    /// `POST /identityProtection/riskyUsers/confirmCompromised` `{"userIds": [...]}`.
    async fn confirm_compromised(&self, user_ids: &[String]) -> Result<(), RemoteError>;
}
