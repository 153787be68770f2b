//! Wire-compatible simulator of the Microsoft identity platform (token),
//! Microsoft Graph, the Exchange Online admin API (InvokeCommand) and
//! ConnectWise Manage, serving one tenant loaded from a fixture. All services
//! share one base URL. See `sim/README.md`.

mod alerts;
mod assertion;
mod auth;
pub mod autotask;
mod batch;
mod calendars;
mod cmdlets;
mod connectwise;
mod directory;
mod exo;
mod faults;
pub mod fixture;
mod folder_cmdlets;
mod folders;
mod graph;
pub mod halopsa;
pub mod identity;
mod inbox_rules;
pub mod snapshot;
mod state;
mod webhooks;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use fixture::{
    FaultAnswer, Fixture, MailboxType, Organization, ScriptedFault, ShownAs, SimSettings,
    ThrottleBody,
};
pub use snapshot::Snapshot;

use auth::Tokens;
use connectwise::Catalog;
use directory::Directory;
use faults::Faults;
use snapshot::Counters;
use state::{SavedTenant, TenantState};

/// Options that are not part of the fixture (secrets the clients must present).
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// If set, the token endpoint requires this client secret.
    pub client_secret: Option<String>,
    /// If set, ConnectWise requests must carry this private key.
    pub cw_private_key: Option<String>,
    /// If set, the HaloPSA token endpoint requires this client secret.
    pub halo_client_secret: Option<String>,
    /// If set, Autotask requests must carry this `Secret` header.
    pub autotask_secret: Option<String>,
    /// If set, the only Autotask API user (zone lookup and `UserName`); otherwise any
    /// address is one.
    pub autotask_username: Option<String>,
    /// Certificates registered on the app (DER, or PEM text with a `CERTIFICATE` block):
    /// client assertions signed with their keys get tokens (sim/README.md, "Certificate
    /// credentials").
    pub certificates: Vec<Vec<u8>>,
    /// The tenant takes certificate credentials only: every client secret is refused.
    pub refuse_client_secrets: bool,
    /// No administrator of the tenant has consented to the app yet: every token request is
    /// refused (AADSTS700016) until [`SimHandle::grant_consent`].
    pub consent_pending: bool,
}

/// Bearer tokens the simulated HaloPSA issued.
#[derive(Default)]
pub(crate) struct PsaTokens {
    issued: Mutex<std::collections::HashSet<String>>,
}

impl PsaTokens {
    pub fn issue(&self) -> String {
        let token: String = (0..24).map(|_| fastrand::alphanumeric()).collect();
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone());
        token
    }

    pub fn valid(&self, token: &str) -> bool {
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(token.strip_prefix("halo-").unwrap_or(token))
    }

    /// Every token issued so far stops working (a revoked API application session).
    pub fn revoke_all(&self) {
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A running simulator. Dropping the handle stops the server as well.
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`, no trailing slash; the base URL of every service.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    sim: Arc<Sim>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The same JSON as `GET /_sim/state`.
    pub fn state(&self) -> Value {
        serde_json::to_value(self.sim.snapshot()).unwrap_or_default()
    }

    /// The state, typed: [`Snapshot`] (the same data as `GET /_sim/state`).
    pub fn snapshot(&self) -> Snapshot {
        self.sim.snapshot()
    }

    /// Exchange and Graph requests in flight now (cheap: for sampling while a run goes on).
    pub fn in_flight(&self) -> (u64, u64) {
        self.sim.faults.in_flight()
    }

    /// The SID of whatever `identity` names in the directory (a user, a group, ...), as a
    /// permission answer would show it.
    pub fn sid_of(&self, identity: &str) -> Option<String> {
        self.sim
            .directory
            .resolve(identity, directory::Scope::All)
            .ok()
            .map(|p| p.shown(fixture::ShownAs::Sid))
    }

    /// Rotates the app's client secret: from now on only `new` gets tokens, and every token
    /// issued so far is refused (as after a rotation that revoked the old credential).
    pub fn rotate_client_secret(&self, new: &str) {
        *self
            .sim
            .rotated_secret
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(new.to_string());
        self.sim.tokens().revoke_all();
    }

    /// Registers a certificate on the app (DER or PEM), as uploading it to the app
    /// registration does; returns its SHA-256 thumbprint (hex).
    pub fn register_certificate(&self, certificate: &[u8]) -> Result<String, String> {
        let registered = assertion::Registered::parse(certificate)?;
        let thumbprint = registered.sha256_hex();
        self.sim.key_credentials.register(registered);
        Ok(thumbprint)
    }

    /// An administrator consents to the app (after `SimOptions::consent_pending`): tokens are
    /// issued from now on.
    pub fn grant_consent(&self) {
        self.sim
            .consent_pending
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Removes the certificate with this SHA-256 thumbprint (hex) from the app; whether it
    /// was registered.
    pub fn remove_certificate(&self, sha256_thumbprint: &str) -> bool {
        self.sim.key_credentials.remove(sha256_thumbprint)
    }

    /// Saves what changes while the simulator serves (grants, tickets, sent mail, counters) to
    /// `path` now and after every request that changed it, so that a simulator started later
    /// from the same fixture can go on from there ([`SimHandle::restore_from`]). The file is
    /// replaced atomically: a process killed mid-write leaves the previous state.
    pub fn persist_to(&self, path: impl Into<PathBuf>) -> std::io::Result<()> {
        *self.sim.lock(&self.sim.persist) = Some(path.into());
        self.sim.persist_now()
    }

    /// Replaces the tenant's grants, tickets, sent mail and counters with those
    /// [`SimHandle::persist_to`] saved at `path`. Call it before any client is pointed here.
    pub fn restore_from(&self, path: &Path) -> std::io::Result<()> {
        let saved: SavedState = serde_json::from_slice(&std::fs::read(path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.sim.state().load(saved.tenant);
        if let Some(identity) = saved.identity {
            *self.sim.identity() = identity;
        }
        self.sim.faults.restore(saved.counters);
        Ok(())
    }

    /// Every HaloPSA token issued so far is refused from now on (the client must fetch a new one).
    pub fn revoke_halo_tokens(&self) {
        self.sim.psa_tokens.revoke_all();
    }

    /// Stop accepting requests and wait for the server task to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// Start the simulator on `127.0.0.1` with an ephemeral port.
pub async fn start(fixture: Fixture, opts: SimOptions) -> std::io::Result<SimHandle> {
    start_on_port(fixture, opts, 0).await
}

/// Start the simulator on `127.0.0.1:port` (`0`: ephemeral).
pub async fn start_on_port(
    fixture: Fixture,
    opts: SimOptions,
    port: u16,
) -> std::io::Result<SimHandle> {
    for certificate in &opts.certificates {
        assertion::Registered::parse(certificate).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a registered certificate: {e}"),
            )
        })?;
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let sim = Arc::new(Sim::new(fixture, opts, base_url.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(sim.clone());
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "simulator server failed");
        }
    });
    Ok(SimHandle {
        base_url,
        addr,
        sim,
        stop,
        server,
    })
}

/// What [`SimHandle::persist_to`] writes.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    tenant: SavedTenant,
    counters: Counters,
    #[serde(default)]
    identity: Option<identity::IdentityState>,
}

/// Shared simulator state behind every handler.
pub(crate) struct Sim {
    pub base_url: String,
    pub directory: Directory,
    pub settings: SimSettings,
    pub options: SimOptions,
    pub psa: Catalog,
    pub psa_tokens: PsaTokens,
    pub faults: Faults,
    /// Defender XDR alerts and Entra ID Protection risky users.
    pub alerts: alerts::AlertFeeds,
    state: Mutex<TenantState>,
    /// Sessions, sign-in, consents, confirmed compromises (`identity.rs`).
    identity: Mutex<identity::IdentityState>,
    tokens: Mutex<Tokens>,
    /// No consent to the app in the tenant yet (`SimOptions::consent_pending`).
    pub(crate) consent_pending: std::sync::atomic::AtomicBool,
    /// The certificates registered on the app, and the assertions' `jti`s seen.
    pub(crate) key_credentials: assertion::KeyCredentials,
    /// A client secret that replaced `options.client_secret` (a rotation).
    rotated_secret: Mutex<Option<String>>,
    /// Where the state is saved after each change (`SimHandle::persist_to`), and what was
    /// saved last.
    persist: Mutex<Option<PathBuf>>,
    persisted: Mutex<Vec<u8>>,
}

impl Sim {
    fn new(fixture: Fixture, options: SimOptions, base_url: String) -> Sim {
        let directory = Directory::new(&fixture);
        let psa = Catalog::new(&fixture);
        let state = TenantState::new(&fixture, &directory, psa.initial_tickets(&fixture));
        let alerts = alerts::AlertFeeds::new(&fixture, &directory, chrono::Utc::now());
        Sim {
            base_url,
            alerts,
            faults: Faults::new(&fixture.sim),
            state: Mutex::new(state),
            identity: Mutex::new(identity::IdentityState::new(&fixture, &directory)),
            tokens: Mutex::new(Tokens::default()),
            consent_pending: std::sync::atomic::AtomicBool::new(options.consent_pending),
            key_credentials: assertion::KeyCredentials::new(
                options
                    .certificates
                    .iter()
                    .filter_map(|c| assertion::Registered::parse(c).ok())
                    .collect(),
            ),
            rotated_secret: Mutex::new(None),
            persist: Mutex::new(None),
            persisted: Mutex::new(Vec::new()),
            directory,
            psa,
            psa_tokens: PsaTokens::default(),
            options,
            settings: fixture.sim,
        }
    }

    pub(crate) fn identity(&self) -> MutexGuard<'_, identity::IdentityState> {
        self.identity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, TenantState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client secret the token endpoint requires, if any.
    pub(crate) fn client_secret(&self) -> Option<String> {
        self.rotated_secret
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .or_else(|| self.options.client_secret.clone())
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the state to the persist file, if one is set and the state changed.
    fn persist_now(&self) -> std::io::Result<()> {
        let Some(path) = self.lock(&self.persist).clone() else {
            return Ok(());
        };
        // Taken before the state is read and held until the file is replaced: two requests
        // saving at once write in the order they read, so an older state never lands last.
        let mut last = self.lock(&self.persisted);
        let saved = SavedState {
            tenant: self.state().saved(),
            counters: self.faults.snapshot(),
            identity: Some(self.identity().clone()),
        };
        let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        if *last == bytes {
            return Ok(());
        }
        let tmp = path.with_extension("tmp");
        // The tenant's state names people and mailboxes: its owner's only, as the audit is.
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        std::io::Write::write_all(&mut file.open(&tmp)?, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        *last = bytes;
        Ok(())
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mutations on this mailbox fail (`sim.fail_mailboxes`).
    pub(crate) fn fails(&self, upn: &str) -> bool {
        self.settings
            .fail_mailboxes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(upn))
    }

    /// Permission reads on this mailbox fail (`sim.unreadable_mailboxes`).
    pub(crate) fn unreadable(&self, upn: &str) -> bool {
        self.settings
            .unreadable_mailboxes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(upn))
    }

    /// Removals on this mailbox succeed without effect (`sim.noop_remove_mailboxes`).
    pub(crate) fn ignores_removals(&self, upn: &str) -> bool {
        self.settings
            .noop_remove_mailboxes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(upn))
    }

    /// The app may not run this cmdlet (`sim.forbidden_cmdlets`).
    pub(crate) fn forbids(&self, cmdlet: &str) -> bool {
        self.settings
            .forbidden_cmdlets
            .iter()
            .any(|c| c.eq_ignore_ascii_case(cmdlet))
    }

    /// Graph calendar routes on this mailbox answer `MailboxNotEnabledForRESTAPI`.
    pub(crate) fn rest_disabled(&self, upn: &str) -> bool {
        self.settings
            .rest_disabled_mailboxes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(upn))
    }

    fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.state().snapshot(&self.directory);
        snapshot.identity = self.identity().snapshot();
        snapshot.counters = self.faults.snapshot();
        let tokens = self.tokens();
        snapshot.counters.tokens_revoked = tokens.revoked;
        snapshot.counters.revoked_token_401 = tokens.rejected;
        snapshot
    }
}

/// The whole HTTP surface.
pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(auth::routes(&sim))
        .merge(graph::routes(&sim))
        .merge(exo::routes(&sim))
        .merge(connectwise::routes(&sim))
        .merge(halopsa::routes(&sim))
        .merge(autotask::routes(&sim))
        .merge(webhooks::routes(&sim))
        .route("/_sim/state", get(state_handler))
        .fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(sim.clone(), persist))
        .with_state(sim)
}

/// Saves the state after every request that may have changed it (see `SimHandle::persist_to`).
async fn persist(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let write = request.method() != Method::GET;
    let response = next.run(request).await;
    if write {
        if let Err(error) = sim.persist_now() {
            tracing::error!(%error, "simulator state could not be saved");
        }
    }
    response
}

async fn state_handler(State(sim): State<Arc<Sim>>) -> Json<Snapshot> {
    Json(sim.snapshot())
}

async fn no_route(method: Method, uri: Uri) -> Response {
    let message = format!("No route for {method} {}", uri.path());
    wire::odata_error(StatusCode::NOT_FOUND, "NotFound", message)
}
