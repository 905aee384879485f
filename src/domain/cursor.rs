//! Keyset page tokens for lists ordered by (time, id): customers and audit events.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::FieldViolation;

/// Where a page ended: the last item's time (microseconds) and id. `kind` keeps a token of one
/// list from being accepted by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at_micros: i64,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self, kind: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{kind}:{}:{}", self.at_micros, self.id))
    }

    pub fn decode(token: &str, kind: &str, field: &str) -> Result<Self, FieldViolation> {
        let bad =
            || FieldViolation::new(field, "is not a page token from this list; start again without one");
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
        let mut parts = text.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(at), Some(id)) if k == kind => Ok(Self {
                at_micros: at.parse().map_err(|_| bad())?,
                id: Uuid::try_parse(id).map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }

    /// The optional cursor of a request's `page_token` (empty: the first page).
    pub fn from_request(token: &str, kind: &str, field: &str) -> Result<Option<Self>, FieldViolation> {
        if token.is_empty() { Ok(None) } else { Self::decode(token, kind, field).map(Some) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_belongs_to_its_list() {
        let cursor = Cursor { at_micros: 1_700_000_000_000_000, id: Uuid::new_v4() };
        let token = cursor.encode("a1");
        assert_eq!(Cursor::decode(&token, "a1", "page_token").unwrap(), cursor);
        assert!(Cursor::decode(&token, "u1", "page_token").is_err());
        assert!(Cursor::decode("garbage!", "a1", "page_token").is_err());
        assert_eq!(Cursor::from_request("", "a1", "page_token").unwrap(), None);
    }
}
