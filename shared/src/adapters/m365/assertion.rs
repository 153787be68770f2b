//! The client assertion of certificate credentials (Microsoft identity platform, "certificate
//! credentials"): a JWT signed with the app's certificate key, sent as `client_assertion`
//! with `client_assertion_type` [`ASSERTION_TYPE`] in place of a client secret.
//!
//! Header: `alg` RS256, `typ` JWT, `x5t` (SHA-1 thumbprint) and `x5t#S256` (SHA-256
//! thumbprint), each base64url of the DER certificate's hash. Claims: `aud` the token
//! endpoint's URL, `iss` = `sub` = the client id, a fresh `jti` (a GUID), `nbf` = `iat` = now,
//! `exp` nine minutes later (the documentation asks for five to ten at most).

use super::certificate::{AssertionSigner, CertError, Certificate};
use crate::config::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is good for, in seconds.
pub const ASSERTION_LIFETIME_SECS: i64 = 540;

#[derive(Debug, Serialize)]
struct Header {
    alg: &'static str,
    typ: &'static str,
    x5t: String,
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

/// The claims of one assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    /// The claims for `client_id` at the token endpoint `token_url`, issued at `now` (Unix
    /// seconds).
    pub fn new(token_url: &str, client_id: &str, now: i64) -> Claims {
        Claims {
            aud: token_url.to_string(),
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        }
    }
}

/// `base64url(header).base64url(claims)`: what is signed.
fn signing_input(certificate: &Certificate, claims: &Claims) -> String {
    let header = Header {
        alg: "RS256",
        typ: "JWT",
        x5t: certificate.x5t(),
        x5t_s256: certificate.x5t_s256(),
    };
    let part = |value: String| URL_SAFE_NO_PAD.encode(value);
    format!(
        "{}.{}",
        part(serde_json::to_string(&header).unwrap_or_default()),
        part(serde_json::to_string(claims).unwrap_or_default())
    )
}

/// The signed assertion with these claims.
pub async fn sign(signer: &dyn AssertionSigner, claims: &Claims) -> Result<Secret, CertError> {
    let input = signing_input(signer.certificate(), claims);
    let signature = signer.sign_rs256(input.as_bytes()).await?;
    Ok(Secret::new(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

/// A fresh assertion for `client_id` at `token_url`, signed now.
pub async fn client_assertion(
    signer: &dyn AssertionSigner,
    token_url: &str,
    client_id: &str,
) -> Result<Secret, CertError> {
    let claims = Claims::new(token_url, client_id, chrono::Utc::now().timestamp());
    sign(signer, &claims).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::m365::certificate::{self_signed, PemSigner};
    use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use serde_json::Value;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn the_assertion_carries_exactly_the_documented_header_and_claims() {
        let made = self_signed("revoke365-test", 30).unwrap();
        let signer = PemSigner::from_pem(&made.key_and_certificate_pem, "test.pem").unwrap();
        let url = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
        let before = chrono::Utc::now().timestamp();
        let jwt = client_assertion(&signer, url, "app-id").await.unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);

        let header = decode(parts[0]);
        let sha1 = hex::decode(made.certificate.sha1_thumbprint()).unwrap();
        let sha256 = hex::decode(made.certificate.sha256_thumbprint()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT",
                "x5t": URL_SAFE_NO_PAD.encode(sha1), "x5t#S256": URL_SAFE_NO_PAD.encode(sha256)})
        );

        let claims = decode(parts[1]);
        let keys: Vec<&str> = claims
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 7, "{claims}");
        assert_eq!(claims["aud"], url);
        assert_eq!(claims["iss"], "app-id");
        assert_eq!(claims["sub"], "app-id");
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        let (nbf, iat, exp) = (
            claims["nbf"].as_i64().unwrap(),
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!(nbf >= before && nbf <= chrono::Utc::now().timestamp());
        assert_eq!(iat, nbf);
        assert!(
            exp > nbf && exp - nbf <= 600,
            "exp at most ten minutes after nbf"
        );

        // The signature verifies with the certificate's public key, RS256.
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let key = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            made.certificate.rsa_public_key(),
        );
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("RS256 signature of the certificate's key");
    }

    #[tokio::test]
    async fn every_assertion_has_its_own_jti() {
        let made = self_signed("revoke365-test", 1).unwrap();
        let signer = PemSigner::from_pem(&made.key_and_certificate_pem, "test.pem").unwrap();
        let a = client_assertion(&signer, "u", "c").await.unwrap();
        let b = client_assertion(&signer, "u", "c").await.unwrap();
        let jti = |s: &Secret| decode(s.expose().split('.').nth(1).unwrap())["jti"].clone();
        assert_ne!(jti(&a), jti(&b));
    }
}
