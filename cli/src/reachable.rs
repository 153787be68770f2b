//! Before a run against a real tenant: every configured endpoint answers a TCP connection, so
//! that a wrong URL or a network problem is one clear `unreachable` error naming the URL
//! within seconds — not a failed step after minutes of retries.

use crate::CliError;
use revoke365::config::{PsaAccounts, ServiceUrls};
use std::time::Duration;
use tokio::net::TcpStream;

const ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const PAUSE: Duration = Duration::from_millis(500);

/// `host:port` of an `http(s)://` URL.
fn authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host_port = rest.split(['/', '?', '#']).next()?;
    let host_port = host_port.rsplit('@').next()?;
    if host_port.is_empty() {
        return None;
    }
    let has_port = match host_port.rfind(']') {
        Some(end) => host_port[end..].contains(':'),
        None => host_port.contains(':'),
    };
    Some(if has_port {
        host_port.to_string()
    } else {
        let port = if scheme.eq_ignore_ascii_case("http") {
            80
        } else {
            443
        };
        format!("{host_port}:{port}")
    })
}

async fn try_connect(authority: &str) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())),
    }
}

/// Every endpoint a run may call: Microsoft 365's, and those of the PSAs some company uses,
/// each with where it is configured (its config key and environment variable).
fn endpoints<'a>(urls: &'a ServiceUrls, psa: &'a PsaAccounts) -> Vec<(String, &'a str, String)> {
    let mut all: Vec<(String, &str, String)> = [
        ("login", &urls.login),
        ("graph", &urls.graph),
        ("exo", &urls.exo),
    ]
    .into_iter()
    .map(|(name, url)| {
        let var = format!("REVOKE365_{}_URL", name.to_ascii_uppercase());
        (format!("urls.{name}"), url.as_str(), var)
    })
    .collect();
    if psa.connectwise.is_some() {
        all.push(("urls.psa".into(), &urls.psa, "REVOKE365_PSA_URL".into()));
    }
    if let Some(halo) = &psa.halo {
        all.push((
            "psa.halo.auth_url".into(),
            &halo.auth_url,
            "REVOKE365_HALO_AUTH_URL".into(),
        ));
        all.push((
            "psa.halo.api_url".into(),
            &halo.api_url,
            "REVOKE365_HALO_API_URL".into(),
        ));
    }
    if let Some(autotask) = &psa.autotask {
        all.push((
            "psa.autotask.zone_url".into(),
            &autotask.zone_url,
            "REVOKE365_AUTOTASK_ZONE_URL".into(),
        ));
    }
    all
}

/// Checks each distinct endpoint, a few times each; the first that never answers is the error.
pub async fn check(urls: &ServiceUrls, psa: &PsaAccounts) -> Result<(), CliError> {
    let mut seen = Vec::new();
    for (field, url, var) in endpoints(urls, psa) {
        let Some(authority) = authority(url) else {
            return Err(CliError::config(
                &field,
                format!("{url:?} is not an http(s) URL"),
            ));
        };
        if seen.contains(&authority) {
            continue;
        }
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match try_connect(&authority).await {
                Ok(()) => {
                    last.clear();
                    break;
                }
                Err(e) => last = e,
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(PAUSE).await;
            }
        }
        if !last.is_empty() {
            return Err(CliError {
                code: "unreachable".into(),
                message: format!(
                    "cannot reach {url} ({field}) after {ATTEMPTS} attempts: {last}; check {field} in the config, {var} and the network"
                ),
                field: Some(field),
                exit: crate::EXIT_BAD_INPUT,
            });
        }
        seen.push(authority);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{authority, endpoints};
    use revoke365::config::{HaloSettings, PsaAccounts, Secret, ServiceUrls};

    #[test]
    fn the_psas_in_use_are_checked_and_no_other() {
        let halo = HaloSettings {
            auth_url: "https://msp.halopsa.com/auth".into(),
            api_url: "https://msp.halopsa.com/api".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            tenant: None,
            ids: Default::default(),
        };
        let psa = PsaAccounts {
            halo: Some(halo),
            ..PsaAccounts::default()
        };
        let urls = ServiceUrls::default();
        let fields: Vec<String> = endpoints(&urls, &psa)
            .into_iter()
            .map(|(field, _, _)| field)
            .collect();
        assert_eq!(
            fields,
            [
                "urls.login",
                "urls.graph",
                "urls.exo",
                "psa.halo.auth_url",
                "psa.halo.api_url"
            ]
        );
    }

    #[test]
    fn authorities() {
        assert_eq!(
            authority("https://graph.microsoft.com").unwrap(),
            "graph.microsoft.com:443"
        );
        assert_eq!(authority("http://127.0.0.1:9/x").unwrap(), "127.0.0.1:9");
        assert_eq!(authority("http://[::1]:8080").unwrap(), "[::1]:8080");
        assert_eq!(authority("http://[::1]").unwrap(), "[::1]:80");
        assert!(authority("graph.microsoft.com").is_none());
    }
}
