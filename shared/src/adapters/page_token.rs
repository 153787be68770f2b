//! Page tokens of run history: where the previous page stopped, as base64url JSON. Callers
//! pass them back unread; a token that does not decode is their mistake (`next`).

use crate::error::StoreError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub fn encode(position: &impl Serialize) -> String {
    let json = serde_json::to_vec(position).expect("a page position serializes");
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode<T: DeserializeOwned>(token: &str) -> Result<T, StoreError> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| bad_token("is not a page token given out by this store"))
}

/// The `next` a caller sent cannot continue this query.
pub fn bad_token(reason: &str) -> StoreError {
    StoreError::BadQuery {
        field: "next",
        reason: format!("{reason}; pass back the `next` of the previous page unchanged"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_comes_back_as_it_went_out_and_garbage_is_refused_as_next() {
        let token = encode(&("2026-12-01T10:00:00Z", "run-1"));
        let back: (String, String) = decode(&token).unwrap();
        assert_eq!(back, ("2026-12-01T10:00:00Z".into(), "run-1".into()));
        let e = decode::<(String, String)>("not a token!").unwrap_err();
        assert!(
            matches!(e, StoreError::BadQuery { field: "next", .. }),
            "{e}"
        );
    }
}
