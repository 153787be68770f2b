//! A contain run's identity actions through Graph (sim/README.md "Identity actions" has the
//! documented shapes): `revokeSignInSessions` (200 `{"value": true}`), `PATCH /users/{id}`
//! `accountEnabled` (204), the user's delegated grants (`oauth2PermissionGrants`, every page),
//! their deletion (204) and re-creation (201), the client app's `servicePrincipals` name, and
//! `riskyUsers/confirmCompromised` (204).

use super::graph::{graph_error, odata_literal, GraphClient};
use crate::adapters::http::Call;
use crate::adapters::m365::api::{Collection, M365Request};
use crate::error::{ErrorKind, RemoteError};
use crate::ports::{ConsentGrant, IdentityActions, IdentityUser, RemovalOutcome};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

const IDENTITY_SELECT: &str = "id,userPrincipalName,accountEnabled,onPremisesSyncEnabled";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphIdentityUser {
    id: String,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    account_enabled: Option<bool>,
    /// `true` for a synced user, `null` (or absent) for a cloud-only one.
    #[serde(default)]
    on_premises_sync_enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphGrant {
    id: String,
    client_id: String,
    #[serde(default)]
    consent_type: Option<String>,
    #[serde(default)]
    principal_id: Option<String>,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    scope: Option<String>,
}

impl From<GraphGrant> for ConsentGrant {
    fn from(g: GraphGrant) -> ConsentGrant {
        ConsentGrant {
            id: g.id,
            client_id: g.client_id,
            consent_type: g.consent_type.unwrap_or_default(),
            principal_id: g.principal_id.filter(|p| !p.is_empty()),
            resource_id: g.resource_id,
            scope: g.scope.unwrap_or_default().trim().to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphServicePrincipal {
    #[serde(default)]
    display_name: Option<String>,
}

/// A 400, 403 or 404 of the user's `oauth2PermissionGrants` navigation.
fn refused_to_apps(e: &RemoteError) -> bool {
    e.is_not_found()
        || matches!(
            e.kind,
            ErrorKind::Api {
                status: 400 | 403 | 404,
                ..
            }
        )
}

impl GraphClient {
    fn url(&self, rest: &str) -> String {
        format!("{}/v1.0/{rest}", self.api().base())
    }

    /// A write whose success has no body we need (204 No Content, or 200/201 with one).
    async fn write(&self, call: &Call, request: M365Request<'_>) -> Result<String, RemoteError> {
        let reply = self.api().send(call, &request).await?;
        if reply.is_success() {
            Ok(reply.body)
        } else {
            Err(graph_error(call, &reply))
        }
    }

    async fn grants_at(&self, call: &Call, url: String) -> Result<Vec<ConsentGrant>, RemoteError> {
        let Collection { items, .. } = self
            .api()
            .collect::<GraphGrant>(call, M365Request::get(url))
            .await?;
        Ok(items.into_iter().map(ConsentGrant::from).collect())
    }
}

#[async_trait]
impl IdentityActions for GraphClient {
    async fn identity_user(&self, user: &str) -> Result<IdentityUser, RemoteError> {
        let call = self.api().call(format!("GET user {user} (sign-in state)"));
        let url = self.user_url(user, "") + "?$select=" + IDENTITY_SELECT;
        let reply = self.api().send(&call, &M365Request::get(url)).await?;
        if !reply.is_success() {
            return Err(graph_error(&call, &reply));
        }
        let u: GraphIdentityUser = reply.json(&call)?;
        Ok(IdentityUser {
            user_principal_name: u.user_principal_name.unwrap_or_else(|| user.to_string()),
            id: u.id,
            account_enabled: u.account_enabled,
            on_premises_sync_enabled: u.on_premises_sync_enabled.unwrap_or(false),
        })
    }

    async fn revoke_sign_in_sessions(&self, user_id: &str) -> Result<(), RemoteError> {
        let call = self
            .api()
            .call(format!("POST revokeSignInSessions {user_id}"));
        let url = self.user_url(user_id, "revokeSignInSessions");
        let body = self
            .write(
                &call,
                M365Request {
                    method: Method::POST,
                    url,
                    body: None,
                    headers: &[],
                    read: false,
                },
            )
            .await?;
        // v1.0 answers 200 {"@odata.context": "...#Edm.Boolean", "value": true}; the beta
        // answered 204. A `false` is a refusal.
        match serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("value").cloned())
        {
            Some(Value::Bool(false)) => Err(call.api(
                StatusCode::OK,
                None,
                "revokeSignInSessions answered {\"value\": false}",
            )),
            _ => Ok(()),
        }
    }

    async fn set_account_enabled(&self, user_id: &str, enabled: bool) -> Result<(), RemoteError> {
        let call = self
            .api()
            .call(format!("PATCH user {user_id} accountEnabled={enabled}"));
        let body = json!({ "accountEnabled": enabled });
        let url = self.user_url(user_id, "");
        self.write(&call, M365Request::with_body(Method::PATCH, url, &body))
            .await
            .map(drop)
    }

    async fn consent_grants(&self, user_id: &str) -> Result<Vec<ConsentGrant>, RemoteError> {
        let call = self
            .api()
            .call(format!("GET oauth2PermissionGrants of {user_id}"));
        let url = self.user_url(user_id, "oauth2PermissionGrants");
        match self.grants_at(&call, url).await {
            Ok(grants) => Ok(grants),
            // The user's navigation documents no application permission: where Graph refuses
            // it to an app, the tenant-wide list filtered by principal is the documented way.
            Err(e) if refused_to_apps(&e) => {
                let filter = format!("principalId eq {}", odata_literal(user_id));
                let url = self.url(&format!(
                    "oauth2PermissionGrants?$filter={}",
                    urlencoding::encode(&filter)
                ));
                let call = self
                    .api()
                    .call(format!("GET oauth2PermissionGrants where {filter}"));
                self.grants_at(&call, url).await
            }
            Err(e) => Err(e),
        }
    }

    async fn app_name(&self, service_principal_id: &str) -> Result<Option<String>, RemoteError> {
        let call = self
            .api()
            .call(format!("GET servicePrincipal {service_principal_id}"));
        let url = self.url(&format!(
            "servicePrincipals/{}?$select=id,appId,displayName",
            urlencoding::encode(service_principal_id)
        ));
        let reply = self.api().send(&call, &M365Request::get(url)).await?;
        if reply.is_success() {
            let sp: GraphServicePrincipal = reply.json(&call)?;
            return Ok(sp.display_name.filter(|n| !n.trim().is_empty()));
        }
        let e = graph_error(&call, &reply);
        if e.is_not_found() {
            return Ok(None);
        }
        Err(e)
    }

    async fn delete_consent_grant(&self, grant_id: &str) -> Result<RemovalOutcome, RemoteError> {
        let call = self
            .api()
            .call(format!("DELETE oauth2PermissionGrant {grant_id}"));
        let url = self.url(&format!(
            "oauth2PermissionGrants/{}",
            urlencoding::encode(grant_id)
        ));
        let request = M365Request {
            method: Method::DELETE,
            url,
            body: None,
            headers: &[],
            read: false,
        };
        let reply = self.api().send(&call, &request).await?;
        if reply.is_success() {
            return Ok(RemovalOutcome::Removed);
        }
        let e = graph_error(&call, &reply);
        match (e.is_not_found(), reply.replayed) {
            (true, false) => Ok(RemovalOutcome::AlreadyGone {
                warning: e.reason(),
            }),
            (true, true) => Ok(RemovalOutcome::GoneOnRetry {
                warning: e.reason(),
            }),
            (false, _) => Err(e),
        }
    }

    async fn create_consent_grant(&self, grant: &ConsentGrant) -> Result<String, RemoteError> {
        let call = self.api().call(format!(
            "POST oauth2PermissionGrant {} for {}",
            grant.client_id,
            grant.principal_id.as_deref().unwrap_or("all principals")
        ));
        let body = json!({
            "clientId": grant.client_id,
            "consentType": grant.consent_type,
            "principalId": grant.principal_id,
            "resourceId": grant.resource_id,
            "scope": grant.scope,
        });
        let url = self.url("oauth2PermissionGrants");
        let answer = self
            .write(&call, M365Request::with_body(Method::POST, url, &body))
            .await?;
        let created: Value =
            serde_json::from_str(&answer).map_err(|e| call.protocol(format!("HTTP 201: {e}")))?;
        created
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| call.protocol("the created grant has no id"))
    }

    async fn confirm_compromised(&self, user_ids: &[String]) -> Result<(), RemoteError> {
        let call = self.api().call(format!(
            "POST riskyUsers/confirmCompromised {}",
            user_ids.join(",")
        ));
        let body = json!({ "userIds": user_ids });
        let url = self.url("identityProtection/riskyUsers/confirmCompromised");
        self.write(&call, M365Request::with_body(Method::POST, url, &body))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_users_read_graphs_shapes() {
        let raw = r#"{"clientId":"85477313-ea43-4c7d-b8a4-54fed35d0b60","consentType":"Principal",
            "id":"E3NHhUPqfUy4pFT-010LYFo5","principalId":"7d54cb02-aaa3-4016-9f9c-a4b49422dd9b",
            "resourceId":"27fb395a-fb00-45fe-865e-ed4a1c5ab7d4","scope":" Mail.Read offline_access "}"#;
        let g: ConsentGrant = serde_json::from_str::<GraphGrant>(raw).unwrap().into();
        assert_eq!(g.scope, "Mail.Read offline_access");
        assert!(g.is_users_own("7D54CB02-aaa3-4016-9f9c-a4b49422dd9b"));
        assert!(!g.is_users_own("someone-else"));
        let all = r#"{"clientId":"c","consentType":"AllPrincipals","id":"x","principalId":null,"resourceId":"r","scope":"User.Read"}"#;
        let g: ConsentGrant = serde_json::from_str::<GraphGrant>(all).unwrap().into();
        assert!(!g.is_users_own("7d54cb02"));
        let u: GraphIdentityUser = serde_json::from_str(
            r#"{"id":"u1","userPrincipalName":"a@b.c","accountEnabled":true,"onPremisesSyncEnabled":null}"#,
        )
        .unwrap();
        assert_eq!(u.on_premises_sync_enabled, None);
    }
}
