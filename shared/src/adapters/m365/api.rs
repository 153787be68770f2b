//! What Graph and the Exchange admin API have in common: a base URL on the tenant's cloud, a
//! client-credentials token for the service's scope (renewed once when a call is refused with
//! 401), reads asked again on the service's transient errors, OData paging with one page cap
//! and one same-origin rule, and the OData error body.

use crate::adapters::http::{same_origin_link, Call, HttpCore, Reply};
use crate::config::AppCredentials;
use crate::error::RemoteError;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Stops a server that hands out next links forever (2,000 pages of 1,000 items).
pub const MAX_PAGES: usize = 2_000;

/// Maps a failed answer of a service to its typed error, which says whether it may pass.
pub type ErrorMap = fn(&Call, &Reply) -> RemoteError;

/// One Microsoft 365 service of one tenant.
pub struct M365Api {
    core: Arc<HttpCore>,
    service: &'static str,
    errors: ErrorMap,
    base: String,
    login: String,
    scope: &'static str,
    creds: AppCredentials,
}

/// A request of an [`M365Api`].
pub struct M365Request<'a> {
    pub method: Method,
    pub url: String,
    pub body: Option<&'a Value>,
    pub headers: &'a [(&'a str, &'a str)],
    /// Changes nothing (a GET, a `Get-*` cmdlet): asked again on a transient error answer.
    pub read: bool,
}

impl<'a> M365Request<'a> {
    pub fn get(url: String) -> M365Request<'a> {
        M365Request {
            method: Method::GET,
            url,
            body: None,
            headers: &[],
            read: true,
        }
    }

    pub fn with_body(method: Method, url: String, body: &'a Value) -> M365Request<'a> {
        M365Request {
            method,
            url,
            body: Some(body),
            headers: &[],
            read: false,
        }
    }

    /// A request with a body that changes nothing (the admin API POSTs its `Get-*` cmdlets).
    pub fn read_only(mut self) -> M365Request<'a> {
        self.read = true;
        self
    }

    pub fn headers(mut self, headers: &'a [(&'a str, &'a str)]) -> M365Request<'a> {
        self.headers = headers;
        self
    }
}

/// An OData collection page: Graph's and the admin API's (which adds warnings).
#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@adminapi.warnings", default)]
    warnings: Vec<String>,
}

/// Every page's items and warnings.
#[derive(Debug)]
pub struct Collection<T> {
    pub items: Vec<T>,
    pub warnings: Vec<String>,
    /// The first request was replayed after a failure that may have reached the service.
    pub replayed: bool,
}

impl M365Api {
    /// `errors` maps the service's failed answers (and so decides which ones a read retries).
    pub fn new(
        core: Arc<HttpCore>,
        service: &'static str,
        errors: ErrorMap,
        base_url: &str,
        login_url: &str,
        scope: &'static str,
        creds: AppCredentials,
    ) -> M365Api {
        M365Api {
            core,
            service,
            errors,
            base: base_url.trim_end_matches('/').to_string(),
            login: login_url.trim_end_matches('/').to_string(),
            scope,
            creds,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn tenant_id(&self) -> &str {
        &self.creds.tenant_id
    }

    /// A token of this app in this tenant for `scope`: this service's, or another's (the
    /// identity platform and the app are the same).
    pub async fn token(&self, scope: &str) -> Result<crate::config::Secret, RemoteError> {
        self.core.token(&self.login, &self.creds, scope).await
    }

    /// A call of this service in this tenant.
    pub fn call(&self, operation: impl Into<String>) -> Call {
        Call::new(self.service, operation, Some(&self.creds.tenant_id))
    }

    /// Sends with a bearer token. A 401 gets one new token and one more try: tokens can be
    /// revoked or expire early mid-run.
    pub async fn send(&self, call: &Call, request: &M365Request<'_>) -> Result<Reply, RemoteError> {
        let token = self
            .core
            .token(&self.login, &self.creds, self.scope)
            .await?;
        let reply = self.send_with(call, request, token.expose()).await?;
        if reply.status != StatusCode::UNAUTHORIZED {
            return Ok(reply);
        }
        tracing::info!(service = self.service, "token refused; fetching a new one");
        let token = self
            .core
            .renew_token(&self.login, &self.creds, self.scope, &token)
            .await?;
        self.send_with(call, request, token.expose()).await
    }

    async fn send_with(
        &self,
        call: &Call,
        request: &M365Request<'_>,
        token: &str,
    ) -> Result<Reply, RemoteError> {
        let body = request.body.map(Value::to_string);
        let build = |client: &reqwest::Client| {
            let mut builder = client
                .request(request.method.clone(), &request.url)
                .bearer_auth(token);
            for (name, value) in request.headers {
                builder = builder.header(*name, *value);
            }
            match &body {
                Some(body) => builder
                    .header(CONTENT_TYPE, "application/json; charset=utf-8")
                    .body(body.clone()),
                None => builder,
            }
        };
        if request.read {
            let transient = |reply: &Reply| (self.errors)(call, reply).is_transient();
            self.core.read(call, &transient, build).await
        } else {
            self.core.send(call, build).await
        }
    }

    /// Every item of a collection, following `@odata.nextLink` with the same method and body
    /// (Graph GETs the link, the admin API POSTs the same cmdlet to it), pages back to back
    /// because the admin API's links expire. An empty success body is an empty collection.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        call: &Call,
        first: M365Request<'_>,
    ) -> Result<Collection<T>, RemoteError> {
        self.collect_by_page(call, first, |_| {}).await
    }

    /// [`M365Api::collect`], telling `page` each page's items as it arrives.
    pub async fn collect_by_page<T: DeserializeOwned>(
        &self,
        call: &Call,
        first: M365Request<'_>,
        page: impl Fn(&[T]),
    ) -> Result<Collection<T>, RemoteError> {
        let mut request = first;
        let mut out = Collection {
            items: Vec::new(),
            warnings: Vec::new(),
            replayed: false,
        };
        for page_number in 0..MAX_PAGES {
            let reply = self.send(call, &request).await?;
            if !reply.is_success() {
                let error = (self.errors)(call, &reply);
                return Err(match reply.replayed {
                    true => error.after_replay(),
                    false => error,
                });
            }
            if page_number == 0 {
                out.replayed = reply.replayed;
            }
            if is_empty_body(&reply.body) {
                return Ok(out);
            }
            let next: Page<T> = reply.json(call)?;
            page(&next.value);
            out.items.extend(next.value);
            out.warnings.extend(next.warnings);
            match next.next_link {
                Some(link) => request.url = same_origin_link(&self.base, &link, call)?.to_string(),
                None => return Ok(out),
            }
        }
        Err(call.protocol(format!("more than {MAX_PAGES} pages; stopped")))
    }
}

/// Success bodies may be empty (204, or a write with nothing to say) or padding.
pub fn is_empty_body(body: &str) -> bool {
    body.trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .is_empty()
}

/// `{"error":{"code","message","details":[{"message"}],"innererror":{"internalException":{"message"}}}}`
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub details: Vec<String>,
    pub inner: Option<String>,
}

impl ErrorBody {
    pub fn parse(body: &str) -> Option<ErrorBody> {
        let value: Value = serde_json::from_str(body.trim_matches('\0')).ok()?;
        let error = value.get("error")?;
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let details = error
            .get("details")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter_map(|d| text(d.get("message"))).collect())
            .unwrap_or_default();
        Some(ErrorBody {
            code: text(error.get("code")),
            message: text(error.get("message")),
            details,
            inner: text(error.pointer("/innererror/internalException/message")),
        })
    }
}

/// The `reason="..."` of an `x-ms-diagnostics` header: where a 403 with an empty body says
/// why (e.g. a missing role).
pub fn diagnostics_reason(reply: &Reply) -> Option<String> {
    let header = reply.header("x-ms-diagnostics")?;
    let start = header.find("reason=\"")? + "reason=\"".len();
    let rest = &header[start..];
    let reason = &rest[..rest.find('"').unwrap_or(rest.len())];
    (!reason.trim().is_empty()).then(|| reason.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_with_every_part() {
        let body = r#"{"error":{"code":"InternalServerError","message":"Error executing cmdlet","details":[{"message":"Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed."},{"message":"  "}],"innererror":{"internalException":{"message":"inner"}}}}"#;
        assert_eq!(
            ErrorBody::parse(body),
            Some(ErrorBody {
                code: Some("InternalServerError".into()),
                message: Some("Error executing cmdlet".into()),
                details: vec!["Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed.".into()],
                inner: Some("inner".into()),
            })
        );
        assert_eq!(ErrorBody::parse("<html/>"), None);
        assert_eq!(ErrorBody::parse("\0\0\0"), None);
    }

    #[test]
    fn diagnostics_name_the_reason() {
        let mut reply = Reply::with(403, "\0\0");
        reply.headers.insert(
            "x-ms-diagnostics",
            "2000003;reason=\"The app lacks the role to run Remove-RecipientPermission\";error_category=\"insufficient_privileges\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            diagnostics_reason(&reply).as_deref(),
            Some("The app lacks the role to run Remove-RecipientPermission")
        );
        assert!(is_empty_body(&reply.body));
    }
}
