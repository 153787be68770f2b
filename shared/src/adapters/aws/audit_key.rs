//! The audit seal in AWS: HMAC-SHA256 with a KMS HMAC key (`GenerateMac`/`VerifyMac`). The
//! key never leaves KMS; the verification function may only generate MACs with it, the
//! functions that check a trail only verify them, and no one may export it (see the key's
//! policy in the template).

use super::dynamo::backend;
use crate::error::StoreError;
use crate::ports::AuditSeal;
use async_trait::async_trait;
use aws_sdk_kms::operation::verify_mac::VerifyMacError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use base64::Engine;

pub use super::resources::AUDIT_KEY_VAR;

#[derive(Debug, Clone)]
pub struct KmsAuditSeal {
    /// `None`: no key configured, so nothing can be sealed or checked (every call says so).
    key: Option<(aws_sdk_kms::Client, String)>,
}

impl KmsAuditSeal {
    /// The key `key_id` names; an empty id is no key.
    pub fn new(client: aws_sdk_kms::Client, key_id: &str) -> KmsAuditSeal {
        KmsAuditSeal {
            key: (!key_id.trim().is_empty()).then(|| (client, key_id.trim().to_string())),
        }
    }

    /// The key the names give (`REVOKE365_AUDIT_KEY_ID` in a function), if any.
    pub fn of(config: &aws_config::SdkConfig, names: &super::resources::AwsNames) -> KmsAuditSeal {
        KmsAuditSeal::new(aws_sdk_kms::Client::new(config), &names.audit_key_id)
    }

    /// No key: for callers that neither anchor nor check a trail.
    pub fn none() -> KmsAuditSeal {
        KmsAuditSeal { key: None }
    }

    fn key(&self) -> Result<&(aws_sdk_kms::Client, String), StoreError> {
        self.key.as_ref().ok_or_else(|| {
            StoreError::backend(format!(
                "no audit key: {AUDIT_KEY_VAR} is not set, so audit manifests can be neither sealed nor checked"
            ))
        })
    }
}

#[async_trait]
impl AuditSeal for KmsAuditSeal {
    async fn mac(&self, message: &[u8]) -> Result<String, StoreError> {
        let (client, key_id) = self.key()?;
        let out = client
            .generate_mac()
            .key_id(key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(|e| backend("KMS GenerateMac", e))?;
        let mac = out
            .mac()
            .ok_or_else(|| StoreError::backend("KMS GenerateMac answered no MAC"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(mac.as_ref()))
    }

    /// KMS answers a MAC that does not match with `KMSInvalidMacException`: that is "does
    /// not verify", not a failure to check.
    async fn verify(&self, message: &[u8], mac: &str) -> Result<bool, StoreError> {
        let (client, key_id) = self.key()?;
        let Ok(mac) = base64::engine::general_purpose::STANDARD.decode(mac) else {
            return Ok(false);
        };
        let out = client
            .verify_mac()
            .key_id(key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .mac(Blob::new(mac))
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.mac_valid()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(VerifyMacError::KmsInvalidMacException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("KMS VerifyMac", e)),
        }
    }
}
