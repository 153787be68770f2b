//! What every SQLite table of the store shares: errors and JSON columns.

use crate::error::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) fn db_error(what: &str, e: rusqlite::Error) -> StoreError {
    StoreError::with_source(format!("{what}: {e}"), e)
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::backend(e.to_string()))
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::backend(format!("{what}: {e}")))
}
