//! `revoke365-sim --fixture FILE [--port N] [--client-secret S] [--cw-private-key K]
//!  [--halo-client-secret S] [--autotask-secret S] [--autotask-username U] [--certificate FILE.cer]... [--refuse-client-secrets]`
//!
//! Serves the simulator until killed; the first stdout line is
//! `listening on http://127.0.0.1:PORT`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use revoke365_sim::{start_on_port, Fixture, SimOptions};

const USAGE: &str = "usage: revoke365-sim --fixture FILE [--port N] [--client-secret S] [--cw-private-key K] [--halo-client-secret S] [--autotask-secret S] [--autotask-username U] [--certificate FILE.cer]... [--refuse-client-secrets]";

struct Args {
    fixture: PathBuf,
    port: u16,
    options: SimOptions,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut fixture, mut port, mut options) = (None, 0, SimOptions::default());
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--fixture" => fixture = Some(PathBuf::from(value()?)),
            "--port" => {
                port = value()?
                    .parse()
                    .map_err(|_| "--port must be a port number".to_string())?
            }
            "--client-secret" => options.client_secret = Some(value()?),
            "--cw-private-key" => options.cw_private_key = Some(value()?),
            "--halo-client-secret" => options.halo_client_secret = Some(value()?),
            "--autotask-secret" => options.autotask_secret = Some(value()?),
            "--autotask-username" => options.autotask_username = Some(value()?),
            "--certificate" => {
                let path = value()?;
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("--certificate {path}: {e}"))?;
                options.certificates.push(bytes);
            }
            "--refuse-client-secrets" => options.refuse_client_secrets = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    let fixture = fixture.ok_or_else(|| format!("--fixture is required\n{USAGE}"))?;
    Ok(Args {
        fixture,
        port,
        options,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let fixture = match Fixture::from_path(&args.fixture) {
        Ok(fixture) => fixture,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let handle = match start_on_port(fixture, args.options, args.port).await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("cannot start the simulator: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", handle.base_url);
    let _ = stdout.flush();
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}
