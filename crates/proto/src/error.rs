//! `ProtoError`: what can be wrong with bytes on the wire, or with a
//! connection's use of the protocol, each with a stable 8xxx code.

/// A violation of the protocol: bytes that are not a valid frame, or a
/// frame that is not allowed where it came. A peer that meets one sends an
/// `Error` frame with [`ProtoError::code`] and closes the connection —
/// except for [`ProtoError::TooManyInFlight`], which fails only the
/// request that was one too many.
///
/// Positions (`at`) count bytes from the first byte of the frame's length
/// field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The frame's declared length is above the limit; raise
    /// `max_frame_bytes` (at most [`crate::FRAME_BYTES_CAP`]) or send less.
    #[error("frame of {actual} bytes exceeds `max_frame_bytes` = {limit}")]
    FrameTooLarge {
        /// The limit in force.
        limit: u32,
        /// The declared (or, when encoding, the needed) length.
        actual: u64,
    },
    /// The declared length cannot even hold the frame header.
    #[error("frame length {0} is below the 10-byte frame header")]
    FrameTooShort(u32),
    /// No message has this kind number.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The flags byte has a bit that is unknown, or not allowed on this kind.
    #[error("flags 0x{flags:02x} are not allowed on frame kind 0x{kind:02x}")]
    BadFlags {
        /// The frame's kind.
        kind: u8,
        /// The flags byte.
        flags: u8,
    },
    /// The frame body ends before `what` is complete.
    #[error("frame body ends inside {what} (byte {at})")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it started.
        at: usize,
    },
    /// A field holds a value its type does not allow.
    #[error("malformed {what} at byte {at}: {why}")]
    Malformed {
        /// The field.
        what: &'static str,
        /// Where it starts.
        at: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A string field is not UTF-8.
    #[error("{what} at byte {at} is not UTF-8")]
    BadUtf8 {
        /// The field.
        what: &'static str,
        /// Where its bytes start.
        at: usize,
    },
    /// Bytes are left in the frame after its last field.
    #[error("{extra} unexpected bytes after the body of frame kind 0x{kind:02x} (byte {at})")]
    TrailingBytes {
        /// The frame's kind.
        kind: u8,
        /// Where the unexpected bytes start.
        at: usize,
        /// How many there are.
        extra: usize,
    },
    /// A list has more items than the protocol allows in one frame.
    #[error("{what} has {actual} items; the protocol allows {limit} in one frame")]
    ListTooLong {
        /// The list.
        what: &'static str,
        /// Most items allowed.
        limit: u32,
        /// Items declared (or, when encoding, given).
        actual: u64,
    },
    /// A `Hello` does not start with the bytes `EDDY`.
    #[error("not an Eddy client: the Hello does not start with \"EDDY\"")]
    BadMagic,
    /// Client and server share no protocol version.
    #[error("no common protocol version: the client speaks {offered:?}, the server {supported:?}")]
    UnsupportedVersion {
        /// What the client offered.
        offered: Vec<u16>,
        /// What the server speaks.
        supported: Vec<u16>,
    },
    /// A valid frame that may not be sent here: a response kind from a
    /// client, anything but `Hello` first, a second `Hello`, ...
    #[error("frame kind 0x{kind:02x} is not allowed here: {why}")]
    UnexpectedKind {
        /// The frame's kind.
        kind: u8,
        /// What was expected instead.
        why: &'static str,
    },
    /// The client has more requests awaiting their responses than the
    /// server's `Welcome` allowed.
    #[error("more requests in flight than `max_in_flight_requests` = {limit}")]
    TooManyInFlight {
        /// The limit from the `Welcome`.
        limit: u32,
    },
    /// The request id belongs to a request still in flight.
    #[error("request id {0} is already in flight")]
    DuplicateRequestId(u64),
    /// The server refused the `Hello`'s token (or its absence).
    #[error("authentication failed: the token is missing or not valid")]
    Unauthenticated,
}

impl ProtoError {
    /// The stable numeric code of this error, carried in `Error` frames.
    /// Protocol errors are the 8xxx area, which no `BusError` uses; codes
    /// are never reused.
    pub fn code(&self) -> u16 {
        match self {
            ProtoError::FrameTooLarge { .. } => 8001,
            ProtoError::FrameTooShort(_) => 8002,
            ProtoError::UnknownKind(_) => 8003,
            ProtoError::BadFlags { .. } => 8004,
            ProtoError::Truncated { .. } => 8005,
            ProtoError::Malformed { .. } => 8006,
            ProtoError::BadUtf8 { .. } => 8007,
            ProtoError::TrailingBytes { .. } => 8008,
            ProtoError::ListTooLong { .. } => 8009,
            ProtoError::BadMagic => 8010,
            ProtoError::UnsupportedVersion { .. } => 8011,
            ProtoError::UnexpectedKind { .. } => 8012,
            ProtoError::TooManyInFlight { .. } => 8013,
            ProtoError::DuplicateRequestId(_) => 8014,
            ProtoError::Unauthenticated => 8015,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = ProtoError> = std::result::Result<T, E>;
