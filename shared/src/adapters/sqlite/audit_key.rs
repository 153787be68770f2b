//! The CLI's audit seal: HMAC-SHA256 with a 32-byte key in `<data_dir>/keys/audit-mac.key`,
//! apart from the trail (the trail's files sit in the data directory itself). The key is made
//! on first use, `0600` in a `0700` directory, and refused if anyone but its owner may read or
//! write it: a key others can read seals nothing.

use crate::error::StoreError;
use crate::ports::AuditSeal;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const KEY_LEN: usize = 32;

/// Where the audit key of the store in `data_dir` is kept.
pub fn audit_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("audit-mac.key")
}

/// The HMAC key file of one data directory.
#[derive(Debug, Clone)]
pub struct FileAuditSeal {
    path: PathBuf,
}

impl FileAuditSeal {
    pub fn new(data_dir: &Path) -> FileAuditSeal {
        FileAuditSeal {
            path: audit_key_path(data_dir),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key, made now if there is none (`create_new`: two processes making it at once
    /// keep the first one's).
    fn key_or_make(&self) -> Result<Vec<u8>, StoreError> {
        if let Some(key) = self.key()? {
            return Ok(key);
        }
        let dir = self.path.parent().expect("the key path has a directory");
        make_private_dir(dir)?;
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key)
            .map_err(|e| StoreError::backend(format!("no random bytes for the audit key: {e}")))?;
        match private_file().write(true).create_new(true).open(&self.path) {
            Ok(mut file) => {
                file.write_all(&key)?;
                file.sync_all()?;
                Ok(key.to_vec())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self
                .key()?
                .ok_or_else(|| StoreError::backend("the audit key vanished as it was made")),
            Err(e) => Err(e.into()),
        }
    }

    /// The key, if the file exists; refused when its mode lets others in or it is not a key.
    fn key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let key = match fs::read(&self.path) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        check_owner_only(&self.path)?;
        // Whoever may write the directory may swap the key for one they know.
        check_owner_only(self.path.parent().expect("the key path has a directory"))?;
        if key.len() != KEY_LEN {
            return Err(StoreError::backend(format!(
                "the audit key {} holds {} bytes, not {KEY_LEN}",
                self.path.display(),
                key.len()
            )));
        }
        Ok(Some(key))
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

#[async_trait]
impl AuditSeal for FileAuditSeal {
    async fn mac(&self, message: &[u8]) -> Result<String, StoreError> {
        let mut mac = hmac(&self.key_or_make()?);
        mac.update(message);
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Without a key file nothing verifies: a key deleted (or never made here) cannot vouch
    /// for a manifest sealed before.
    async fn verify(&self, message: &[u8], tag: &str) -> Result<bool, StoreError> {
        let Some(key) = self.key()? else {
            return Ok(false);
        };
        let Ok(tag) = hex::decode(tag) else {
            return Ok(false);
        };
        let mut mac = hmac(&key);
        mac.update(message);
        Ok(mac.verify_slice(&tag).is_ok())
    }
}

fn private_file() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn make_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    Ok(())
}

#[cfg(unix)]
fn check_owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let (what, fix) = match path.is_dir() {
            true => ("directory of the audit key", "chmod 700"),
            false => ("audit key", "chmod 600"),
        };
        return Err(StoreError::backend(format!(
            "the {what} {} has mode {mode:o}: only its owner may read or write it ({fix})",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_key_is_made_private_on_first_use_and_verifies_only_its_own_macs() {
        let dir = tempfile::tempdir().unwrap();
        let seal = FileAuditSeal::new(dir.path());
        assert!(
            !seal.verify(b"m", "00").await.unwrap(),
            "no key: nothing verifies"
        );
        let mac = seal.mac(b"manifest").await.unwrap();
        assert!(seal.verify(b"manifest", &mac).await.unwrap());
        assert!(!seal.verify(b"manifest!", &mac).await.unwrap());
        assert!(!seal.verify(b"manifest", "not hex").await.unwrap());
        assert_eq!(seal.mac(b"manifest").await.unwrap(), mac, "one key, kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(seal.path()), 0o600);
            assert_eq!(mode(seal.path().parent().unwrap()), 0o700);
            fs::set_permissions(seal.path(), fs::Permissions::from_mode(0o644)).unwrap();
            let refused = seal.mac(b"manifest").await.unwrap_err().to_string();
            assert!(refused.contains("mode 644"), "{refused}");
            fs::set_permissions(seal.path(), fs::Permissions::from_mode(0o600)).unwrap();
            let dir = seal.path().parent().unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(0o770)).unwrap();
            let refused = seal
                .verify(b"manifest", &mac)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                refused.contains("directory") && refused.contains("mode 770"),
                "{refused}"
            );
        }
        let other = tempfile::tempdir().unwrap();
        assert!(
            !FileAuditSeal::new(other.path())
                .verify(b"manifest", &mac)
                .await
                .unwrap(),
            "another key does not verify it"
        );
    }
}
