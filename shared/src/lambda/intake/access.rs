//! `GET /access`: who can open which mailbox, from the company's permission index.

use super::answer::{error_body, forbidden, response, unavailable};
use super::caller::{Authorized, Subject};
use super::form::{bounded_param, company_param, param_name, query};
use super::Deps;
use crate::authorize::Power;
use crate::index::{lookup, AccessError as LookupError, AccessQuery};
use crate::model::{unprintable, validate_email, InvalidRequest};
use crate::ports::{OrgStore, StoreIndexes};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::json;
use tracing::error;

/// The longest UPN or address (`user` of `GET /access`).
const MAX_USER: usize = 320;

/// `user` of `GET /access`: a UPN, an address or an object id — what the index finds a trustee
/// by — of at most [`MAX_USER`] printable characters, no spaces.
fn access_user(value: &str) -> Result<String, InvalidRequest> {
    let spaced = value.chars().any(char::is_whitespace);
    match unprintable(value, MAX_USER) {
        None if !spaced => Ok(value.to_string()),
        _ => Err(InvalidRequest::new(
            "user",
            format!("must be a UPN, an address or an object id of at most {MAX_USER} characters, without spaces or control characters"),
        )),
    }
}

const ACCESS_PARAMS: &str = "company_id (required), and user or mailbox (one of the two)";

/// A `GET /access` query: the company, and whose grants or which mailbox's trustees.
pub(super) struct AccessRequest {
    company: String,
    query: AccessQuery,
}

/// The parameters of `GET /access`: the company and exactly one of `user` / `mailbox`; an
/// empty one counts as absent, an unknown one is refused.
fn access_query<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<AccessRequest, InvalidRequest> {
    let (mut company, mut user, mut mailbox) = (None, None, None);
    for (key, value) in params {
        let value = bounded_param(key, value.trim())?;
        if value.is_empty() {
            continue;
        }
        match key {
            "company_id" => company = Some(company_param(value)?),
            "user" => user = Some(access_user(value)?),
            "mailbox" => mailbox = Some(validate_email("mailbox", value)?),
            other => {
                return Err(InvalidRequest::new(
                    param_name(other),
                    format!("is not a parameter of GET /access; expected {ACCESS_PARAMS}"),
                ))
            }
        }
    }
    let company = company.ok_or_else(|| {
        InvalidRequest::new(
            "company_id",
            "is required: the index is read one company at a time",
        )
    })?;
    let query = match (user, mailbox) {
        (Some(u), None) => AccessQuery::User(u),
        (None, Some(m)) => AccessQuery::Mailbox(m),
        (Some(_), Some(_)) => {
            return Err(InvalidRequest::new(
                "mailbox",
                "give user or mailbox, not both",
            ))
        }
        (None, None) => {
            return Err(InvalidRequest::new(
                "user",
                "is required (or mailbox): whose grants, or which mailbox's trustees",
            ))
        }
    };
    Ok(AccessRequest { company, query })
}

impl Subject for AccessRequest {
    type Named = AccessRequest;
    const POWER: Option<Power> = Some(Power::Access);
    const REFUSED: &'static str = "not allowed to read this company's permission index";
    const UNAVAILABLE: &'static str = "the permission index could not be read; retry";

    fn named(parts: &Parts) -> Result<AccessRequest, InvalidRequest> {
        access_query(query(parts).iter())
    }

    async fn load(request: AccessRequest, _: &Deps) -> Result<Self, Response> {
        Ok(request)
    }

    fn company(&self) -> &str {
        &self.company
    }
}

/// `GET /access?company_id=&user=` / `&mailbox=`: every grant the user holds (or every
/// trustee of the mailbox) as of the company's newest permission-index snapshot, from the
/// index alone (no tenant call; `as_of` says how fresh). The company's access power decides
/// who may read it.
pub(super) async fn get_access(
    State(deps): State<Deps>,
    Authorized { subject: asked }: Authorized<AccessRequest>,
) -> Response {
    let company = &asked.company;
    let (org, index) = match (
        deps.store.org_settings(company).await,
        deps.store.permission_index(),
    ) {
        (Ok(Some(org)), Some(index)) => (org, index),
        (Ok(None), _) => return forbidden(AccessRequest::REFUSED),
        (Err(e), _) => {
            error!(error = %e, "org settings lookup failed");
            return unavailable(AccessRequest::UNAVAILABLE);
        }
        (Ok(Some(_)), None) => return unavailable(AccessRequest::UNAVAILABLE),
    };
    match lookup(index, &org, &asked.query, None).await {
        Ok(map) => response(200, json!(map)),
        Err(e @ LookupError::NoSnapshot(_)) => response(
            404,
            error_body(
                "no_index",
                &format!("{e}; on AWS the scheduled index job of the company takes one"),
                Some("company_id"),
            ),
        ),
        Err(e) => {
            error!(error = %e, company_id = %company, "permission index read failed");
            unavailable(AccessRequest::UNAVAILABLE)
        }
    }
}
