//! The app's certificate key on AWS: an asymmetric KMS key (RSA_2048, SIGN_VERIFY) that signs
//! client assertions with `kms:Sign` (RSASSA_PKCS1_V1_5_SHA_256 over the SHA-256 digest), so
//! no private key exists anywhere a function, a person or a log can read. The functions may
//! only sign with it (the key's policy in the template).

use crate::adapters::m365::certificate::{
    rsa_public_key_of_spki, AssertionSigner, CertError, Certificate,
};
use async_trait::async_trait;
use aws_lc_rs::digest::{digest, SHA256};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};

/// The variable naming the signing key (id, ARN or alias) in a function's environment.
pub const SIGNING_KEY_VAR: &str = "REVOKE365_M365_SIGNING_KEY_ID";

/// A certificate whose key is the KMS key `key_id`.
#[derive(Debug, Clone)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
    certificate: Certificate,
}

impl KmsSigner {
    pub fn new(client: aws_sdk_kms::Client, key_id: &str, certificate: Certificate) -> KmsSigner {
        KmsSigner {
            client,
            key_id: key_id.to_string(),
            certificate,
        }
    }

    /// The key's RSA public key (PKCS #1), to make its certificate from (`kms:GetPublicKey`,
    /// an operator's right, not the functions').
    pub async fn public_key(
        client: &aws_sdk_kms::Client,
        key_id: &str,
    ) -> Result<Vec<u8>, CertError> {
        let out = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| {
                CertError(format!(
                    "kms:GetPublicKey {key_id}: {}",
                    aws_sdk_kms::error::DisplayErrorContext(&e)
                ))
            })?;
        let spki = out
            .public_key
            .ok_or_else(|| CertError(format!("kms:GetPublicKey {key_id}: no public key")))?;
        rsa_public_key_of_spki(spki.as_ref(), key_id)
    }
}

#[async_trait]
impl AssertionSigner for KmsSigner {
    fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    fn describe(&self) -> String {
        format!("KMS key {}", self.key_id)
    }

    async fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, CertError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(digest(&SHA256, message).as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
            .send()
            .await
            .map_err(|e| {
                CertError(format!(
                    "kms:Sign with {}: {}",
                    self.key_id,
                    aws_sdk_kms::error::DisplayErrorContext(&e)
                ))
            })?;
        out.signature
            .map(Blob::into_inner)
            .ok_or_else(|| CertError(format!("kms:Sign with {}: no signature", self.key_id)))
    }
}
