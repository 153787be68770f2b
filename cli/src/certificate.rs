//! Certificate credentials on the CLI: reading `[m365] certificate_file` (and the next one of
//! a rotation) or `REVOKE365_M365_CERTIFICATE`, `revoke365 cert new`, and what `check` says of
//! each certificate's expiry.

use crate::args::{CertNewArgs, Format};
use crate::{CliError, EXIT_SUCCESS};
use revoke365::adapters::aws::kms_signer::KmsSigner;
use revoke365::adapters::m365::certificate::{
    self_signed, self_signed_for_key, AssertionSigner, CertError, Certificate, PemSigner,
};
use revoke365::config::ClientCredential;
use revoke365::model::FailureCode;
use revoke365::steps::preflight::{Area, Check, Outcome, Problem};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable holding the PEM text (key and certificate) in place of a file.
pub const CERTIFICATE_ENV: &str = "REVOKE365_M365_CERTIFICATE";

/// `check` warns this many days before a certificate expires.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The certificates configured, current first: `REVOKE365_M365_CERTIFICATE` (or
/// `certificate_file`) and `next_certificate_file`. `None` when neither is set: the client
/// secret is used.
pub fn configured(
    env_pem: Option<String>,
    file: Option<&Path>,
    next_file: Option<&Path>,
) -> Result<Option<ClientCredential>, CliError> {
    let mut signers: Vec<Arc<dyn AssertionSigner>> = Vec::new();
    match (env_pem, file) {
        (Some(pem), _) => signers.push(Arc::new(
            PemSigner::from_pem(&pem, CERTIFICATE_ENV)
                .map_err(|e| CliError::config(CERTIFICATE_ENV, e.to_string()))?,
        )),
        (None, Some(path)) => signers.push(read_file(path, "m365.certificate_file")?),
        (None, None) => {}
    }
    if let Some(path) = next_file {
        if signers.is_empty() {
            return Err(CliError::config(
                "m365.next_certificate_file",
                "next_certificate_file is the second certificate of a rotation: set certificate_file (or REVOKE365_M365_CERTIFICATE) too",
            ));
        }
        signers.push(read_file(path, "m365.next_certificate_file")?);
    }
    Ok((!signers.is_empty()).then_some(ClientCredential::Certificates(signers)))
}

/// A PEM file with the private key and its certificate, readable by its owner only.
fn read_file(path: &Path, field: &str) -> Result<Arc<dyn AssertionSigner>, CliError> {
    let shown = path.display().to_string();
    refuse_shared_key_file(path, field)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::config(field, format!("cannot read {shown}: {e}")))?;
    let signer =
        PemSigner::from_pem(&text, &shown).map_err(|e| CliError::config(field, e.to_string()))?;
    Ok(Arc::new(signer))
}

/// A private key others can read is refused, as ssh refuses one.
#[cfg(unix)]
fn refuse_shared_key_file(path: &Path, field: &str) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::config(field, format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CliError::config(
            field,
            format!(
                "{} holds a private key and is readable by others (mode {mode:o}); make it readable by its owner only: chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared_key_file(_path: &Path, _field: &str) -> Result<(), CliError> {
    Ok(())
}

/// One check per configured certificate for `check`: ok with its expiry, a warning inside
/// [`EXPIRY_WARNING_DAYS`], a problem once expired (or not yet valid).
pub fn expiry_checks(credential: &ClientCredential) -> Vec<Check> {
    let ClientCredential::Certificates(signers) = credential else {
        return Vec::new();
    };
    let now = chrono::Utc::now();
    signers
        .iter()
        .enumerate()
        .map(|(i, signer)| {
            let cert = signer.certificate();
            let days = cert.days_left(now);
            let which = if i == 0 { "certificate" } else { "next certificate" };
            let named = format!(
                "{which} {} (SHA-256 thumbprint {})",
                signer.describe(),
                cert.sha256_thumbprint()
            );
            let until = cert.not_after.format("%Y-%m-%d");
            let outcome = if cert.not_after <= now || cert.not_before > now {
                Outcome::Problem(Problem {
                    code: FailureCode::CredentialsInvalid,
                    field: if i == 0 { "m365.certificate_file" } else { "m365.next_certificate_file" },
                    message: format!(
                        "{named} is not valid now (valid {} to {until}): make a new one (revoke365 cert new) and upload its .cer to the app registration",
                        cert.not_before.format("%Y-%m-%d")
                    ),
                })
            } else if days < EXPIRY_WARNING_DAYS {
                Outcome::Warning(format!(
                    "{named} expires in {days} days ({until}): make the next one now (revoke365 cert new), upload it and set next_certificate_file"
                ))
            } else {
                Outcome::Ok(format!("{named} valid until {until} ({days} days)"))
            };
            Check {
                name: "certificate_expiry",
                area: Area::M365,
                outcome,
            }
        })
        .collect()
}

/// `revoke365 cert new --out FILE.pem [--days N] [--kms-key-id KEY]`: the key and certificate
/// in FILE.pem (mode 0600; with a KMS key the certificate alone), the certificate alone in
/// FILE.cer (DER) to upload to the app registration.
pub async fn cert_new(args: CertNewArgs) -> Result<u8, CliError> {
    if !(1..=3650).contains(&args.days) {
        return Err(CliError::config(
            "days",
            format!("--days must be 1 to 3650, not {}", args.days),
        ));
    }
    if args.out.exists() && !args.force {
        return Err(CliError::config(
            "out",
            format!(
                "{} exists; a new key would replace the one in use (pass --force to replace it)",
                args.out.display()
            ),
        ));
    }
    let (pem, cert) = match &args.kms_key_id {
        None => {
            let made = self_signed(&args.subject, args.days)
                .map_err(|e| crate::internal(e.to_string()))?;
            (made.key_and_certificate_pem, made.certificate)
        }
        Some(key_id) => {
            let cert = kms_certificate(key_id, &args.subject, args.days).await?;
            (cert.pem(), cert)
        }
    };
    let cer = cer_path(&args.out);
    crate::write_owner_only(&args.out, &pem).map_err(|e| {
        CliError::config("out", format!("cannot write {}: {e}", args.out.display()))
    })?;
    std::fs::write(&cer, cert.der())
        .map_err(|e| CliError::config("out", format!("cannot write {}: {e}", cer.display())))?;
    let what = if args.kms_key_id.is_some() {
        "certificate (the key stays in KMS)"
    } else {
        "key and certificate (keep it secret; mode 600)"
    };
    match args.format {
        Format::Json => println!(
            "{}",
            json!({
                "pem": args.out.display().to_string(),
                "pem_holds": if args.kms_key_id.is_some() { "certificate" } else { "key_and_certificate" },
                "certificate": cer.display().to_string(),
                "kms_key_id": args.kms_key_id,
                "subject": cert.subject,
                "sha256_thumbprint": cert.sha256_thumbprint(),
                "sha1_thumbprint": cert.sha1_thumbprint(),
                "not_after": cert.not_after.to_rfc3339(),
            })
        ),
        Format::Table => {
            println!("{what}: {}", args.out.display());
            println!("certificate to upload: {} (app registration → Certificates & secrets → Upload certificate)", cer.display());
            println!("subject: {}", cert.subject);
            println!("SHA-256 thumbprint: {}", cert.sha256_thumbprint());
            println!("SHA-1 thumbprint: {}", cert.sha1_thumbprint());
            println!(
                "valid until: {}",
                cert.not_after.format("%Y-%m-%d %H:%M UTC")
            );
        }
    }
    Ok(EXIT_SUCCESS)
}

/// A self-signed certificate for the KMS key `key_id`, signed by it through kms:Sign.
async fn kms_certificate(key_id: &str, subject: &str, days: u32) -> Result<Certificate, CliError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let kms = aws_sdk_kms::Client::new(&config);
    let refused = |e: CertError| CliError::config("kms_key_id", e.to_string());
    let public = KmsSigner::public_key(&kms, key_id).await.map_err(refused)?;
    // Any certificate: the signer's own is not used to make a new one.
    let placeholder = self_signed("placeholder", 1).map_err(|e| crate::internal(e.to_string()))?;
    let signer = KmsSigner::new(kms, key_id, placeholder.certificate);
    // rcgen signs synchronously: the KMS call runs on this runtime meanwhile.
    let sign = |tbs: &[u8]| {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(signer.sign_rs256(tbs))
        })
    };
    self_signed_for_key(subject, days, &public, &sign).map_err(refused)
}

/// FILE.pem → FILE.cer.
fn cer_path(out: &Path) -> PathBuf {
    out.with_extension("cer")
}
