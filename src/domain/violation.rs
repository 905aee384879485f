//! A request field that failed validation, and how error messages quote what a client sent.

use std::fmt;

/// A request field that failed validation, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `secret.aws.secret_access_key`.
    pub field: String,
    /// What is wrong, in words that say how to fix it. Never contains the field's value.
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

impl std::error::Error for FieldViolation {}

/// Longest prefix of a client's value an error message quotes.
pub const QUOTED_CHARS: usize = 64;

/// How an error message shows a value the client sent: quoted (escaped as Rust's `{:?}`), and
/// only its first [`QUOTED_CHARS`] characters, then an ellipsis, so that an answer never grows
/// with its input. Never for secret fields: those are not quoted at all.
pub fn quoted(value: &str) -> String {
    let (prefix, cut) = prefix(value, QUOTED_CHARS);
    format!("{prefix:?}{}", if cut { "…" } else { "" })
}

/// A name the client sent (a field, a map key) as an error names it: unquoted, cut as
/// [`quoted`] cuts.
pub fn shortened(value: &str) -> String {
    shortened_to(value, QUOTED_CHARS)
}

/// `value`'s first `max_chars` characters, then an ellipsis if that is not all of it.
pub fn shortened_to(value: &str, max_chars: usize) -> String {
    let (prefix, cut) = prefix(value, max_chars);
    format!("{prefix}{}", if cut { "…" } else { "" })
}

/// The first `max_chars` characters of `value`, and whether that is not all of it.
fn prefix(value: &str, max_chars: usize) -> (&str, bool) {
    match value.char_indices().nth(max_chars) {
        None => (value, false),
        Some((end, _)) => (&value[..end], true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_escaped_and_cut_after_a_prefix() {
        assert_eq!(quoted("vultr"), "\"vultr\"");
        assert_eq!(quoted("a\"b\n"), "\"a\\\"b\\n\"");
        let long = "v".repeat(5000);
        let shown = quoted(&long);
        assert_eq!(shown, format!("\"{}\"…", "v".repeat(QUOTED_CHARS)));
        // Cut on a character boundary.
        let wide = "é".repeat(100);
        assert_eq!(quoted(&wide).chars().filter(|c| *c == 'é').count(), QUOTED_CHARS);
        assert_eq!(shortened(&wide), format!("{}…", "é".repeat(QUOTED_CHARS)));
        assert_eq!(shortened("api_key"), "api_key");
    }
}
