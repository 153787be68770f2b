//! What became of each user an alert named, and how an alert's handling reaches the company:
//! what the contain runs (`alert_runs.rs`) and the approval notice (`alert_approval.rs`) share.

use crate::model::{AlertedUser, OrgSettings, RunId, RunStatus};
use crate::ports::{Connections, Connector};
use serde::Serialize;

/// What became of one alerted user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRun {
    pub user_email: String,
    pub alert_source: String,
    pub alert_id: String,
    pub incident_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// False: the alert had started this run already, or no run was started (`error`).
    pub created: bool,
    /// Why no run was started (the request was refused), when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AlertRun {
    pub(super) fn new(user: &AlertedUser) -> AlertRun {
        AlertRun {
            user_email: user.user_email.clone(),
            alert_source: user.source.as_str().to_string(),
            alert_id: user.alert_id.clone(),
            incident_id: user.incident_id.clone(),
            run_id: None,
            status: None,
            created: false,
            error: None,
        }
    }
}

/// A user an alert named for whom no run was started: awaiting approval, or one the company
/// never contains automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldUser {
    pub user_email: String,
    pub alert_source: String,
    pub alert_id: String,
    pub incident_id: String,
}

impl HeldUser {
    pub(super) fn new(user: &AlertedUser) -> HeldUser {
        HeldUser {
            user_email: user.user_email.clone(),
            alert_source: user.source.as_str().to_string(),
            alert_id: user.alert_id.clone(),
            incident_id: user.incident_id.clone(),
        }
    }
}

/// How an alert's handling reaches the company's tenant (to see whether a user is one it never
/// contains under another address), PSA and mail (the approval notice): connected already (the
/// poller), through a connector on first need (the Sentinel route), or not at all.
#[derive(Clone, Copy)]
pub enum Reach<'a> {
    Connected(&'a Connections),
    Connector(&'a dyn Connector),
    Nowhere,
}

/// A [`Reach`] with the connection it made, made at most once.
pub(super) struct Reached<'a> {
    pub(super) reach: Reach<'a>,
    made: Option<Result<Connections, String>>,
}

impl<'a> Reached<'a> {
    pub(super) fn new(reach: Reach<'a>) -> Self {
        Reached { reach, made: None }
    }

    /// The company's connections, or why there are none here.
    pub(super) async fn connections(&mut self, org: &OrgSettings) -> Result<&Connections, String> {
        match self.reach {
            Reach::Connected(connections) => Ok(connections),
            Reach::Nowhere => Err("no connection to the company's tenant, PSA or mail here".into()),
            Reach::Connector(connector) => {
                if self.made.is_none() {
                    let made = connector.connect(org).await.map_err(|e| {
                        format!("cannot reach the company's tenant, PSA and mail: {e}")
                    });
                    self.made = Some(made);
                }
                match self.made.as_ref() {
                    Some(Ok(connections)) => Ok(connections),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not connected".into()),
                }
            }
        }
    }
}
