//! Certificate credentials at the token endpoint: the client assertion (a JWT signed with a
//! certificate's key) checked as the Microsoft identity platform documents it — the
//! certificate registered on the app (by `x5t#S256` or `x5t`), the signature (RS256 or PS256)
//! with that certificate's key, `aud` the token endpoint, `iss` = `sub` = `client_id`, the
//! lifetime (`nbf`/`exp`, five minutes of clock skew) and a `jti` never seen before — answered
//! with Entra's AADSTS codes (sim/README.md, "Certificate credentials").

use std::collections::HashSet;
use std::sync::Mutex;

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use aws_lc_rs::signature::{
    UnparsedPublicKey, VerificationAlgorithm, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
};
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::TokenError;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Entra tolerates this much clock skew on `nbf` and `exp`.
const CLOCK_SKEW_SECS: i64 = 300;

/// A certificate registered on the app registration (its public half).
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    sha1: Vec<u8>,
    sha256: Vec<u8>,
    /// PKCS #1 `RSAPublicKey`.
    rsa_public_key: Vec<u8>,
}

impl Registered {
    /// A DER certificate, or PEM text holding one (its first `CERTIFICATE` block).
    pub fn parse(bytes: &[u8]) -> Result<Registered, String> {
        let der = if bytes.starts_with(b"-----") {
            x509_parser::pem::Pem::iter_from_buffer(bytes)
                .filter_map(Result::ok)
                .find(|pem| pem.label == "CERTIFICATE")
                .map(|pem| pem.contents)
                .ok_or("no CERTIFICATE block in the PEM")?
        } else {
            bytes.to_vec()
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|_| "not an X.509 certificate".to_string())?;
        Ok(Registered {
            sha1: digest(&SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref().to_vec(),
            sha256: digest(&SHA256, &der).as_ref().to_vec(),
            rsa_public_key: cert
                .tbs_certificate
                .subject_pki
                .subject_public_key
                .data
                .to_vec(),
        })
    }

    pub fn sha256_hex(&self) -> String {
        hex_upper(&self.sha256)
    }
}

/// The app's key credentials and the `jti`s already presented.
#[derive(Default)]
pub(crate) struct KeyCredentials {
    registered: Mutex<Vec<Registered>>,
    seen_jti: Mutex<HashSet<String>>,
}

impl KeyCredentials {
    pub fn new(registered: Vec<Registered>) -> KeyCredentials {
        KeyCredentials {
            registered: Mutex::new(registered),
            seen_jti: Mutex::default(),
        }
    }

    pub fn register(&self, cert: Registered) {
        self.lock_registered().push(cert);
    }

    /// Removes the certificate with this SHA-256 thumbprint (hex, any case); whether it was
    /// there.
    pub fn remove(&self, sha256_hex: &str) -> bool {
        let mut registered = self.lock_registered();
        let before = registered.len();
        registered.retain(|c| !c.sha256_hex().eq_ignore_ascii_case(sha256_hex));
        registered.len() != before
    }

    fn lock_registered(&self) -> std::sync::MutexGuard<'_, Vec<Registered>> {
        self.registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the assertion of a token request for `client_id` sent to one of `token_urls`
    /// (the URL as the client addressed it).
    pub fn verify(
        &self,
        assertion: &str,
        client_id: &str,
        token_urls: &[String],
        now: i64,
    ) -> Result<(), TokenError> {
        let jwt = Jwt::parse(assertion).ok_or_else(malformed)?;
        if !matches!(jwt.header.alg.as_str(), "RS256" | "PS256") {
            return Err(invalid_client(
                50027,
                format!(
                    "JWT token is invalid or malformed. The client assertion's alg '{}' is not supported; use RS256 or PS256.",
                    jwt.header.alg
                ),
            ));
        }
        if jwt
            .header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(malformed());
        }
        let cert = self.certificate_of(&jwt.header, client_id)?;
        let algorithm: &dyn VerificationAlgorithm = if jwt.header.alg == "PS256" {
            &RSA_PSS_2048_8192_SHA256
        } else {
            &RSA_PKCS1_2048_8192_SHA256
        };
        UnparsedPublicKey::new(algorithm, &cert.rsa_public_key)
            .verify(jwt.signing_input.as_bytes(), &jwt.signature)
            .map_err(|_| {
                invalid_client(
                    700027,
                    "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]".to_string(),
                )
            })?;
        let claims = jwt.claims;
        let aud = match &claims.aud {
            Some(Value::String(aud)) => aud.clone(),
            Some(Value::Array(auds)) if auds.len() > 1 => {
                return Err(invalid_client(
                    5002741,
                    format!("Number of audience values in the provided client credential exceed maximum allowed. {} audience values provided, maximum allowed is 1.", auds.len()),
                ))
            }
            Some(Value::Array(auds)) => auds
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        if !token_urls.iter().any(|url| url == &aud) {
            return Err(invalid_client(
                700023,
                format!("Client assertion audience claim does not match Realm issuer. The audience '{aud}' is not the token endpoint the request was sent to. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials ."),
            ));
        }
        if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
            return Err(invalid_client(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .".to_string(),
            ));
        }
        let (Some(exp), nbf) = (claims.exp, claims.nbf) else {
            return Err(malformed());
        };
        if now > exp + CLOCK_SKEW_SECS || nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECS) {
            return Err(invalid_client(
                700024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
                    time(now),
                    nbf.map(time).unwrap_or_else(|| "-".into()),
                    time(exp)
                ),
            ));
        }
        let jti = claims.jti.filter(|j| !j.is_empty()).ok_or_else(malformed)?;
        let fresh = self
            .seen_jti
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(format!("{client_id}\u{0}{jti}"));
        if !fresh {
            return Err(invalid_client(
                50027,
                format!("JWT token is invalid or malformed. The client assertion's jti '{jti}' was already used: every assertion needs a new one."),
            ));
        }
        Ok(())
    }

    /// The registered certificate the header's thumbprints name.
    fn certificate_of(&self, header: &Header, client_id: &str) -> Result<Registered, TokenError> {
        let decode = |v: &Option<String>| v.as_deref().and_then(|t| URL_SAFE_NO_PAD.decode(t).ok());
        let (s256, s1) = (decode(&header.x5t_s256), decode(&header.x5t));
        if s256.is_none() && s1.is_none() {
            return Err(invalid_client(
                700027,
                format!("Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: 'none': the header has neither x5t#S256 nor x5t. Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"),
            ));
        }
        let registered = self.lock_registered();
        let found = registered.iter().find(|c| {
            s256.as_ref().is_none_or(|t| *t == c.sha256) && s1.as_ref().is_none_or(|t| *t == c.sha1)
        });
        found.cloned().ok_or_else(|| {
            let shown = s256.as_deref().or(s1.as_deref()).map(hex_upper).unwrap_or_default();
            invalid_client(
                700027,
                format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"),
            )
        })
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    x5t: Option<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<Value>,
    iss: Option<String>,
    sub: Option<String>,
    jti: Option<String>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

struct Jwt {
    header: Header,
    claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jwt {
    fn parse(text: &str) -> Option<Jwt> {
        let mut parts = text.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let json = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
        Some(Jwt {
            header: serde_json::from_slice(&json(h)?).ok()?,
            claims: serde_json::from_slice(&json(c)?).ok()?,
            signing_input: format!("{h}.{c}"),
            signature: json(s)?,
        })
    }
}

fn malformed() -> TokenError {
    invalid_client(50027, "JWT token is invalid or malformed.".to_string())
}

fn invalid_client(code: u32, description: String) -> TokenError {
    TokenError {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        code,
        description,
    }
}

fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|t| t.format("%m/%d/%Y %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The assertion half of a token request: one credential only, the documented
/// `client_assertion_type`, then the assertion itself.
pub(crate) fn check_request(
    sim: &crate::Sim,
    form: &std::collections::HashMap<String, String>,
    assertion: &str,
    client_id: &str,
    token_urls: &[String],
) -> Result<(), TokenError> {
    if form.contains_key("client_secret") {
        return Err(TokenError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            code: 90014,
            description: "Only one client credential may be presented: the request has both client_secret and client_assertion.".to_string(),
        });
    }
    if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
        return Err(TokenError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            code: 900144,
            description: format!(
                "The request body must contain the following parameter: 'client_assertion_type' ('{ASSERTION_TYPE}')."
            ),
        });
    }
    sim.key_credentials.verify(
        assertion,
        client_id,
        token_urls,
        chrono::Utc::now().timestamp(),
    )
}
