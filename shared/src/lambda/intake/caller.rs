//! Who is calling, and whether they may: the extractors every IAM route's handler takes.
//!
//! [`Caller`] is the IAM principal API Gateway's authorizer proved (403 when an IAM route's
//! request carries none; the router checks it for every IAM route before the route's own
//! extractors). [`Authorized`] is what a route that names a company by its path or query
//! acts on — a run, a company's history, its permission index — handed to the handler only
//! once the caller is authorized for that company (and for the route's [`Power`], if any).
//! Its order is the API's: the request's form first (400 naming the field, no I/O), then what
//! names the company is read (a run: 404 when there is none), then the company's allow-list.
//!
//! Routes whose company is named in the body (`POST /revocations`, `/alerts/sentinel`,
//! `/revocations/{id}/restore`, `/backups/restore`) are authorized by the intake step they
//! call, which the CLI shares, after the body's form is checked.

use super::answer::{error_body, forbidden, invalid, no_run, response, unavailable};
use super::form::RunIdParam;
use super::Deps;
use crate::authorize::{authorize_company, authorize_company_power, AccessError, Power};
use crate::model::{InvalidRequest, Run, RunId};
use crate::ports::RunRecords;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use std::future::Future;
use tracing::{error, warn};

/// The IAM principal that signed the request (the HTTP API is IAM-authorized but for the
/// HMAC-signed route). An empty principal is none.
pub(super) struct Caller(pub String);

impl Caller {
    fn of(parts: &Parts) -> Option<String> {
        let context = match parts.request_context_ref()? {
            RequestContext::ApiGatewayV2(context) => context,
            _ => return None,
        };
        context
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone())
            .filter(|arn| !arn.trim().is_empty())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    /// API Gateway never sends an IAM route's request without an identity; the function does
    /// not take an empty principal for a caller.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Caller::of(parts).map(Caller).ok_or_else(|| {
            warn!("an IAM route's request carries no IAM identity; refused");
            response(
                403,
                error_body(
                    "forbidden",
                    "this route is IAM-authorized and the request carries no IAM identity",
                    None,
                ),
            )
        })
    }
}

/// What a route acts on, named by the request's path or query, and so the company whose
/// allow-list decides.
pub(super) trait Subject: Sized + Send {
    /// What the request names, read from its form alone.
    type Named: Send;
    /// The power the route needs beyond the company's allow-list (None: the list alone).
    const POWER: Option<Power>;
    /// The answer's message for a caller the company does not allow.
    const REFUSED: &'static str;
    /// The answer's message when the company's settings (or the subject) cannot be read.
    const UNAVAILABLE: &'static str;

    /// Read and checked without any I/O: a 400 naming the field.
    fn named(parts: &Parts) -> Result<Self::Named, InvalidRequest>;
    /// Read what it names (a run from the store: 404 when there is none).
    fn load(named: Self::Named, deps: &Deps)
        -> impl Future<Output = Result<Self, Response>> + Send;
    /// The company it belongs to.
    fn company(&self) -> &str;
}

/// The route's subject, its company having allowed the caller.
pub(super) struct Authorized<S> {
    pub subject: S,
}

impl<S: Subject> FromRequestParts<Deps> for Authorized<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, deps: &Deps) -> Result<Self, Self::Rejection> {
        let Caller(caller) = Caller::from_request_parts(parts, deps).await?;
        let named = S::named(parts).map_err(invalid)?;
        let subject = S::load(named, deps).await?;
        let company = subject.company();
        let allowed = match S::POWER {
            None => authorize_company(&deps.store, company, Some(&caller)).await,
            Some(power) => {
                authorize_company_power(&deps.store, company, Some(&caller), power).await
            }
        };
        match allowed {
            Ok(()) => Ok(Authorized { subject }),
            Err(AccessError::Refused(_) | AccessError::UnknownCompany) => {
                Err(forbidden(S::REFUSED))
            }
            Err(AccessError::Store(e)) => {
                error!(error = %e, "org settings lookup failed");
                Err(unavailable(S::UNAVAILABLE))
            }
        }
    }
}

/// A run of the path: `RunOf<false>` to read it, `RunOf<true>` to act on it (cancel it, read
/// its audit trail).
pub(super) struct RunOf<const ACTS: bool>(pub Run);

pub(super) type RunToRead = RunOf<false>;
pub(super) type RunToActOn = RunOf<true>;

impl<const ACTS: bool> Subject for RunOf<ACTS> {
    type Named = RunId;
    const POWER: Option<Power> = None;
    const REFUSED: &'static str = if ACTS {
        "not allowed to act on this run"
    } else {
        "not allowed to read this run"
    };
    const UNAVAILABLE: &'static str = "run lookup failed; retry";

    fn named(parts: &Parts) -> Result<RunId, InvalidRequest> {
        RunIdParam::of(parts)
    }

    async fn load(run_id: RunId, deps: &Deps) -> Result<Self, Response> {
        match deps.store.get_run(&run_id).await {
            Ok(Some(run)) => Ok(RunOf(run)),
            Ok(None) => Err(no_run(&run_id)),
            Err(e) => {
                error!(error = %e, "run lookup failed");
                Err(unavailable(Self::UNAVAILABLE))
            }
        }
    }

    fn company(&self) -> &str {
        &self.0.request.company_id
    }
}
