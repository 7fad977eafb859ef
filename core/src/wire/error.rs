//! Errors of decoding and validating a message.

/// How many bytes of a bad payload an error quotes.
const EXCERPT_LEN: usize = 200;

/// A message that cannot be decoded or applied safely.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed message: {reason} (payload starts with: {excerpt:?})")]
    Malformed {
        /// What the JSON parser said: the position, and the field when it can tell.
        reason: String,
        /// The start of the payload.
        excerpt: String,
    },
    /// A format version this library does not know.
    #[error("unsupported wire format {found} (this library reads format {supported}); upgrade the subscriber before the publisher (payload starts with: {excerpt:?})")]
    UnsupportedFormat {
        /// The format version in the message.
        found: u64,
        /// The version this library reads.
        supported: u64,
        /// The start of the payload.
        excerpt: String,
    },
    /// Well-formed JSON whose content breaks a rule of the format.
    #[error("invalid message: {field}: {reason} (payload starts with: {excerpt:?})")]
    Invalid {
        /// The offending field, as a path (`operations[0].types`).
        field: String,
        /// Which rule it breaks.
        reason: String,
        /// The start of the payload.
        excerpt: String,
    },
}

/// The first bytes of a payload, lossily decoded, for error messages.
pub(crate) fn excerpt(payload: &[u8]) -> String {
    let end = payload.len().min(EXCERPT_LEN);
    let mut text = String::from_utf8_lossy(&payload[..end]).into_owned();
    if payload.len() > EXCERPT_LEN {
        text.push('…');
    }
    text
}
