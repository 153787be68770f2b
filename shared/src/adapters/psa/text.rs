//! What the PSA clients share in reading and writing their fields: an id as text, a summary cut
//! to the PSA's length.

use serde_json::Value;

/// A PSA id, a number or a string in its answers, as text (`None` when there is none).
pub(crate) fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// At most `max` characters, cut on a character boundary.
pub(crate) fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_read_as_text_and_summaries_are_cut_on_a_character_boundary() {
        assert_eq!(id_text(&json!(48213)), Some("48213".into()));
        assert_eq!(id_text(&json!(" T20261201 ")), Some("T20261201".into()));
        assert_eq!(id_text(&json!("")), None);
        assert_eq!(id_text(&Value::Null), None);
        let long = "é".repeat(150);
        assert_eq!(truncate_chars(&long, 100).chars().count(), 100);
        assert_eq!(truncate_chars("short", 100), "short");
    }
}
