//! Certificate credentials of the app registration: the certificate (its thumbprints and
//! validity), the key that signs client assertions behind [`AssertionSigner`] — a PEM file's
//! key here ([`PemSigner`]), a KMS key on AWS — and a new self-signed pair for `cert new`.
//! No text made here ever carries key material: errors name the file and what is wrong.

use async_trait::async_trait;
use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use std::fmt;

/// A certificate or key that cannot be used; the text names the source, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertError(pub String);

/// An X.509 certificate as the app registration holds it (the public half only).
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    /// The RSA public key (`RSAPublicKey`, PKCS #1 DER) the certificate carries.
    rsa_public_key: Vec<u8>,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("sha256", &self.sha256_thumbprint())
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl Certificate {
    /// A DER-encoded certificate with an RSA key.
    pub fn from_der(der: &[u8], source: &str) -> Result<Certificate, CertError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| CertError(format!("{source}: not a DER X.509 certificate")))?;
        let spki = &cert.tbs_certificate.subject_pki;
        // rsaEncryption; Entra accepts RSA certificates for client assertions.
        if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
            return Err(CertError(format!(
                "{source}: the certificate's key is not RSA (the Microsoft identity platform takes RSA certificates, 2048 bits or more)"
            )));
        }
        let time = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
        let validity = cert.validity();
        Ok(Certificate {
            der: der.to_vec(),
            rsa_public_key: spki.subject_public_key.data.to_vec(),
            subject: cert.subject().to_string(),
            not_before: time(validity.not_before.timestamp()),
            not_after: time(validity.not_after.timestamp()),
        })
    }

    /// The first `CERTIFICATE` block of a PEM text.
    pub fn from_pem(text: &str, source: &str) -> Result<Certificate, CertError> {
        let blocks = pem_blocks(text, source)?;
        let der = blocks
            .iter()
            .find(|(label, _)| label == "CERTIFICATE")
            .map(|(_, der)| der)
            .ok_or_else(|| CertError(format!("{source}: no CERTIFICATE block in the PEM")))?;
        Certificate::from_der(der, source)
    }

    /// Every `CERTIFICATE` block of a PEM text, in order.
    pub fn all_from_pem(text: &str, source: &str) -> Result<Vec<Certificate>, CertError> {
        let certificates = pem_blocks(text, source)?
            .iter()
            .filter(|(label, _)| label == "CERTIFICATE")
            .map(|(_, der)| Certificate::from_der(der, source))
            .collect::<Result<Vec<_>, _>>()?;
        if certificates.is_empty() {
            return Err(CertError(format!(
                "{source}: no CERTIFICATE block in the PEM"
            )));
        }
        Ok(certificates)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as PEM text.
    pub fn pem(&self) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// The RSA public key (PKCS #1 `RSAPublicKey` DER).
    pub fn rsa_public_key(&self) -> &[u8] {
        &self.rsa_public_key
    }

    /// SHA-256 of the DER, upper-case hex (as Entra lists it).
    pub fn sha256_thumbprint(&self) -> String {
        hex::encode_upper(digest(&SHA256, &self.der))
    }

    /// SHA-1 of the DER, upper-case hex (the "Thumbprint" column of the portal).
    pub fn sha1_thumbprint(&self) -> String {
        hex::encode_upper(digest(&SHA1_FOR_LEGACY_USE_ONLY, &self.der))
    }

    /// The JWS `x5t#S256` header: base64url of the SHA-256 thumbprint's bytes.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest(&SHA256, &self.der))
    }

    /// The JWS `x5t` header: base64url of the SHA-1 thumbprint's bytes.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, &self.der))
    }

    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        (self.not_after - now).num_days()
    }
}

/// Signs client assertions with the key of one registered certificate. The token client does
/// not care where the key is: a PEM file ([`PemSigner`]) or a KMS key that never leaves KMS.
#[async_trait]
pub trait AssertionSigner: Send + Sync {
    /// The certificate whose key this is (its thumbprints go in the assertion's header).
    fn certificate(&self) -> &Certificate;
    /// Where the key is, for messages (a file's path, a KMS key id); never key material.
    fn describe(&self) -> String;
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (JWS `RS256`).
    async fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, CertError>;
}

/// A private key and its certificate from one PEM text (`certificate_file`,
/// `REVOKE365_M365_CERTIFICATE`).
pub struct PemSigner {
    key: RsaKeyPair,
    certificate: Certificate,
    source: String,
}

impl fmt::Debug for PemSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemSigner")
            .field("source", &self.source)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl PemSigner {
    /// The key (`PRIVATE KEY`, PKCS #8, or `RSA PRIVATE KEY`, PKCS #1) and the certificate
    /// (`CERTIFICATE`) of one PEM text; the key must be the certificate's.
    pub fn from_pem(text: &str, source: &str) -> Result<PemSigner, CertError> {
        let blocks = pem_blocks(text, source)?;
        let mut key = None;
        let mut certificate = None;
        for (label, der) in &blocks {
            match label.as_str() {
                "PRIVATE KEY" if key.is_none() => {
                    key = Some(RsaKeyPair::from_pkcs8(der).map_err(|_| {
                        CertError(format!("{source}: the PRIVATE KEY is not an RSA key (PKCS #8)"))
                    })?);
                }
                "RSA PRIVATE KEY" if key.is_none() => {
                    key = Some(RsaKeyPair::from_der(der).map_err(|_| {
                        CertError(format!("{source}: the RSA PRIVATE KEY cannot be read"))
                    })?);
                }
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(CertError(format!(
                        "{source}: the private key is encrypted; give it unencrypted in a file only you can read (chmod 600)"
                    )))
                }
                "CERTIFICATE" if certificate.is_none() => {
                    certificate = Some(Certificate::from_der(der, source)?);
                }
                _ => {}
            }
        }
        let (Some(key), Some(certificate)) = (key, certificate) else {
            return Err(CertError(format!(
                "{source}: the PEM must hold both the private key (PRIVATE KEY) and its certificate (CERTIFICATE)"
            )));
        };
        if key.public_key().as_ref() != certificate.rsa_public_key() {
            return Err(CertError(format!(
                "{source}: the private key is not the key of the certificate (subject {}, SHA-256 {})",
                certificate.subject,
                certificate.sha256_thumbprint()
            )));
        }
        Ok(PemSigner {
            key,
            certificate,
            source: source.to_string(),
        })
    }
}

#[async_trait]
impl AssertionSigner for PemSigner {
    fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    fn describe(&self) -> String {
        self.source.clone()
    }

    async fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, CertError> {
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| CertError(format!("{}: signing failed", self.source)))?;
        Ok(signature)
    }
}

/// A new key pair and self-signed certificate (`revoke365 cert new`).
pub struct NewCertificate {
    /// The private key (PKCS #8) and the certificate, one PEM text: what `certificate_file`
    /// reads. Secret: write it readable by its owner only.
    pub key_and_certificate_pem: String,
    pub certificate: Certificate,
}

impl fmt::Debug for NewCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCertificate")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// A 2048-bit RSA key and a self-signed certificate for `CN=<common_name>`, valid from now
/// for `days` days.
pub fn self_signed(common_name: &str, days: u32) -> Result<NewCertificate, CertError> {
    let failed = |what: &str| CertError(format!("cannot make the certificate: {what}"));
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .map_err(|_| failed("RSA key generation failed"))?;
    let params = certificate_params(common_name, days)?;
    let cert = params
        .self_signed(&key)
        .map_err(|_| failed("self-signing failed"))?;
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    Ok(NewCertificate {
        key_and_certificate_pem: pem,
        certificate: Certificate::from_der(cert.der(), "the new certificate")?,
    })
}

/// `CN=<common_name>`, valid from now for `days` days.
fn certificate_params(common_name: &str, days: u32) -> Result<rcgen::CertificateParams, CertError> {
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = name;
    // rcgen takes `time`'s dates: the epoch plus seconds.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = u64::try_from(Utc::now().timestamp())
        .map_err(|_| CertError("the clock is before 1970".into()))?;
    params.not_before = epoch + std::time::Duration::from_secs(now);
    params.not_after = params.not_before + std::time::Duration::from_secs(u64::from(days) * 86_400);
    Ok(params)
}

/// Signs bytes with a key held elsewhere (RSASSA-PKCS1-v1_5 SHA-256).
pub type SignFn<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, CertError> + 'a;

/// A self-signed certificate for a key held elsewhere (a KMS key): `rsa_public_key` is its
/// public key (PKCS #1 `RSAPublicKey` DER) and `sign` signs with it (RSASSA-PKCS1-v1_5
/// SHA-256), once, over the certificate's to-be-signed part.
pub fn self_signed_for_key(
    common_name: &str,
    days: u32,
    rsa_public_key: &[u8],
    sign: &SignFn<'_>,
) -> Result<Certificate, CertError> {
    struct External<'a> {
        public: &'a [u8],
        sign: &'a SignFn<'a>,
    }
    impl rcgen::PublicKeyData for External<'_> {
        fn der_bytes(&self) -> &[u8] {
            self.public
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_RSA_SHA256
        }
    }
    impl rcgen::SigningKey for External<'_> {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            (self.sign)(msg).map_err(|_| rcgen::Error::RemoteKeyError)
        }
    }
    let params = certificate_params(common_name, days)?;
    let key = External {
        public: rsa_public_key,
        sign,
    };
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertError(format!("cannot make the certificate: {e}")))?;
    Certificate::from_der(cert.der(), "the new certificate")
}

/// The RSA public key (PKCS #1) inside a DER `SubjectPublicKeyInfo` (what KMS's
/// GetPublicKey returns).
pub fn rsa_public_key_of_spki(spki: &[u8], source: &str) -> Result<Vec<u8>, CertError> {
    use x509_parser::prelude::FromDer;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|_| CertError(format!("{source}: not a DER SubjectPublicKeyInfo")))?;
    if info.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
        return Err(CertError(format!("{source}: the key is not RSA")));
    }
    Ok(info.subject_public_key.data.to_vec())
}

/// The (label, DER) blocks of a PEM text; an error names `source` only.
fn pem_blocks(text: &str, source: &str) -> Result<Vec<(String, Vec<u8>)>, CertError> {
    let mut blocks = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        match pem {
            Ok(pem) => blocks.push((pem.label, pem.contents)),
            Err(_) if !blocks.is_empty() => break,
            Err(_) => {
                return Err(CertError(format!(
                    "{source}: not PEM text (-----BEGIN ...----- blocks)"
                )))
            }
        }
    }
    if blocks.is_empty() {
        return Err(CertError(format!("{source}: no PEM block")));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_part(pem: &str) -> String {
        let start = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
        let end = pem.find("-----END PRIVATE KEY-----").unwrap() + 25;
        pem[start..end].to_string()
    }

    #[test]
    fn a_new_certificate_reads_back_with_its_thumbprints_and_validity() {
        let made = self_signed("revoke365", 90).unwrap();
        let signer = PemSigner::from_pem(&made.key_and_certificate_pem, "new.pem").unwrap();
        let cert = signer.certificate();
        assert_eq!(cert, &made.certificate);
        assert_eq!(cert.subject, "CN=revoke365");
        assert_eq!(cert.sha256_thumbprint().len(), 64);
        assert_eq!(cert.sha1_thumbprint().len(), 40);
        assert!((88..=90).contains(&cert.days_left(Utc::now())));
        assert_eq!(Certificate::from_pem(&cert.pem(), "c").unwrap(), *cert);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_without_showing_either() {
        let a = self_signed("a", 1).unwrap();
        let b = self_signed("b", 1).unwrap();
        let a_key = key_part(&a.key_and_certificate_pem);
        let mixed = format!("{a_key}\n{}", b.certificate.pem());
        let err = PemSigner::from_pem(&mixed, "mixed.pem").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("mixed.pem") && text.contains("not the key of the certificate"),
            "{text}"
        );
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        let body_line = a_key.lines().nth(1).unwrap();
        assert!(!text.contains(body_line), "{text}");
    }

    #[test]
    fn incomplete_or_encrypted_pems_say_what_is_missing() {
        let made = self_signed("a", 1).unwrap();
        let only_key = key_part(&made.key_and_certificate_pem);
        let err = PemSigner::from_pem(&only_key, "k.pem").unwrap_err();
        assert!(err.0.contains("both the private key"), "{err}");
        let encrypted = only_key.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        let err = PemSigner::from_pem(&encrypted, "e.pem").unwrap_err();
        assert!(err.0.contains("encrypted"), "{err}");
        let err = PemSigner::from_pem("not a pem", "x.pem").unwrap_err();
        assert!(err.0.starts_with("x.pem: "), "{err}");
    }

    #[test]
    fn signers_and_credentials_never_print_the_key() {
        let made = self_signed("a", 1).unwrap();
        let signer = PemSigner::from_pem(&made.key_and_certificate_pem, "a.pem").unwrap();
        let key_line = key_part(&made.key_and_certificate_pem)
            .lines()
            .nth(1)
            .unwrap()
            .to_string();
        let credential =
            crate::config::ClientCredential::Certificates(vec![std::sync::Arc::new(signer)]);
        let shown = format!("{credential:?} {made:?}");
        assert!(shown.contains("a.pem"), "{shown}");
        assert!(
            !shown.contains(&key_line) && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
