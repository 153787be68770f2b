//! Before a run against a real tenant: every configured endpoint answers a TCP connection, so
//! that a wrong URL or a network problem is one clear `unreachable` error naming the URL
//! within seconds — not a failed step after minutes of retries.

use crate::CliError;
use revoke365::config::ServiceUrls;
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

/// Checks each distinct endpoint, a few times each; the first that never answers is the error.
pub async fn check(urls: &ServiceUrls) -> Result<(), CliError> {
    let mut seen = Vec::new();
    for (name, url) in [
        ("login", &urls.login),
        ("graph", &urls.graph),
        ("exo", &urls.exo),
        ("psa", &urls.psa),
    ] {
        let Some(authority) = authority(url) else {
            return Err(CliError::config(
                &format!("urls.{name}"),
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
                field: Some(format!("urls.{name}")),
                message: format!(
                    "cannot reach {url} ({name}) after {ATTEMPTS} attempts: {last}; check [urls] in the config, REVOKE365_{}_URL and the network",
                    name.to_ascii_uppercase()
                ),
                exit: crate::EXIT_BAD_INPUT,
            });
        }
        seen.push(authority);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::authority;

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
