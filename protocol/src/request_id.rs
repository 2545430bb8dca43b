//! A request's id: the client's `x-request-id` when usable, else a new UUIDv7. Held inline (at
//! most `MAX_LEN` visible ASCII bytes, no heap), so the id travels from the handler into the
//! response header, the shadow runs and the lineage record without an allocation.

use std::fmt;

/// The longest client id kept; longer ones are replaced by a generated id.
pub const MAX_LEN: usize = 128;

/// Length of a hyphenated UUID.
const UUID_LEN: usize = 36;

/// A request id: 1 to `MAX_LEN` visible ASCII characters (`!` to `~`). `Copy`, 129 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl RequestId {
    /// The client's id, if it is 1 to `MAX_LEN` visible ASCII characters; `None` otherwise
    /// (empty, too long, spaces, control or non-ASCII bytes).
    pub fn from_client(text: &[u8]) -> Option<RequestId> {
        if text.is_empty() || text.len() > MAX_LEN || !text.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let mut id = RequestId { len: text.len() as u8, bytes: [0; MAX_LEN] };
        id.bytes[..text.len()].copy_from_slice(text);
        Some(id)
    }

    /// A new UUIDv7: time-ordered, so the lineage index on request ids grows at one end instead
    /// of dirtying random pages on every write.
    pub fn generate() -> RequestId {
        let mut id = RequestId { len: UUID_LEN as u8, bytes: [0; MAX_LEN] };
        uuid::Uuid::now_v7().hyphenated().encode_lower(&mut id.bytes[..UUID_LEN]);
        id
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored (checked in `from_client`, hex and '-' in `generate`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_when_visible_ascii_and_short_enough() {
        assert_eq!(RequestId::from_client(b"req-42").map(|id| id.to_string()).as_deref(), Some("req-42"));
        let longest = "x".repeat(MAX_LEN);
        assert_eq!(RequestId::from_client(longest.as_bytes()).map(|id| id.to_string()), Some(longest.clone()));
        for bad in [&b""[..], b"has space", b"tab\t", "caf\u{e9}".as_bytes(), b"nul\0", &[b'y'; MAX_LEN + 1]] {
            assert!(RequestId::from_client(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn generated_ids_are_time_ordered_uuids() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        let parsed = uuid::Uuid::parse_str(a.as_str()).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(a.as_str().len(), 36);
        assert!(a.as_str() < b.as_str(), "{a} then {b}");
    }
}
