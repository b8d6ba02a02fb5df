//! Text messages from the venue (order updates, errors), copied whole into fixed-size
//! records that cross to the gateway on a ring without allocating.

use kestrel_engine::UnixNanos;

/// Bytes of text a [`TextRecord`] holds. Kite order updates are 1–2 KB of JSON.
pub const TEXT_CAPACITY: usize = 4080;

/// What a text message is, from a cheap look at its `"type"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TextKind {
    OrderUpdate = 1,
    Error = 2,
    Other = 3,
}

/// One whole text message from the venue, copied into a fixed-size record so that it can
/// cross to the gateway on a ring without allocating. The gateway parses the JSON; the feed
/// thread only classifies it. 4 KiB per record: a ring of 256 is 1 MiB, allocated once.
#[derive(Clone, Copy)]
pub struct TextRecord {
    pub recv_ts: UnixNanos,
    pub len: u16,
    pub kind: TextKind,
    bytes: [u8; TEXT_CAPACITY],
}

impl TextRecord {
    /// `None` when `text` is longer than [`TEXT_CAPACITY`].
    pub fn new(text: &str, recv_ts: UnixNanos) -> Option<TextRecord> {
        if text.len() > TEXT_CAPACITY {
            return None;
        }
        let mut bytes = [0u8; TEXT_CAPACITY];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(TextRecord {
            recv_ts,
            len: text.len() as u16,
            kind: classify(text),
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Copied from a `&str` whole, so always UTF-8; never panics.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for TextRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextRecord")
            .field("recv_ts", &self.recv_ts)
            .field("kind", &self.kind)
            .field("text", &self.as_str())
            .finish()
    }
}

fn classify(text: &str) -> TextKind {
    let compact = |t: &str| text.contains(t);
    if compact("\"type\":\"order\"") || compact("\"type\": \"order\"") {
        TextKind::OrderUpdate
    } else if compact("\"type\":\"error\"") || compact("\"type\": \"error\"") {
        TextKind::Error
    } else {
        TextKind::Other
    }
}
