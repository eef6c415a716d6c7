//! `eddy-proto`: Eddy's native binary protocol — frames and messages, as
//! pure functions from values to bytes and back.
//!
//! A client sends requests — one per `Bus` and `EventStore` method, plus
//! `Hello`, `Ping` and push-stream control — in length-prefixed frames,
//! each with a request id of its choosing; the server answers each with a
//! response frame carrying the same id, in any order, so many requests can
//! be in flight at once (pipelining). A `Subscribe` opens a push stream
//! whose `Deliver` frames spend credit that the client grants with
//! `Credit`.
//! `docs/protocol.md` specifies all of it byte by byte, for clients in
//! other languages; this crate is the reference implementation.
//!
//! It is the **only** crate with wire types, and it is **not** a server or
//! a client: no sockets, no async, no clock. [`decode_frame`] is a pure
//! function over a byte slice — it never panics on any input, so it can be
//! fuzzed — and the encoders write into a `Vec<u8>`.
//!
//! Limits (every one is checked by the decoder and the encoder):
//!
//! - a frame's length is at most the connection's `max_frame_bytes`:
//!   [`FRAME_BYTES_DEFAULT`] (16 MiB) unless the server's `Welcome` says
//!   otherwise, never more than [`FRAME_BYTES_CAP`] (64 MiB), and
//!   [`HANDSHAKE_FRAME_BYTES`] (64 KiB) for `Hello` and its answer;
//! - every list in a frame holds at most [`LIST_ITEMS_MAX`] (10,000) items
//!   — a publish batch, ack ids, deliveries, … — except a `Hello`'s
//!   versions (1..=[`VERSIONS_MAX`]) and an error's fields
//!   ([`ERROR_FIELDS_MAX`]); list responses too large for one frame
//!   continue over several ([`encode_response`], [`Response::absorb`]);
//! - a count or length that the rest of the frame cannot hold is refused
//!   before anything is allocated, and the decoder allocates only for
//!   values the frame holds: decoded memory is proportional to the frame's
//!   length.
//!
//! The bus's own limits (event size, name rules, `max_deliveries`, …) are
//! not the protocol's: the server's bus checks them and answers with an
//! `Error` frame carrying the [`eddy_bus::BusError`] code.
//!
//! ```
//! use eddy_bus::Event;
//! use eddy_proto::{Decoded, Frame, Request, decode_frame, encode_frame, FRAME_BYTES_DEFAULT};
//!
//! let publish = Frame::new(
//!     7,
//!     Request::Publish {
//!         topic: "orders.placed".into(),
//!         events: vec![Event::new("OrderPlaced", "{}").with_key("order-1")],
//!     },
//! );
//! let mut wire = Vec::new();
//! encode_frame(&publish, FRAME_BYTES_DEFAULT, &mut wire)?;
//! match decode_frame(&wire, FRAME_BYTES_DEFAULT)? {
//!     Decoded::Frame { frame, consumed } => {
//!         assert_eq!(frame, publish);
//!         assert_eq!(consumed, wire.len());
//!     }
//!     Decoded::Incomplete { .. } => unreachable!("the whole frame is there"),
//! }
//! # Ok::<(), eddy_proto::ProtoError>(())
//! ```

mod error;
mod frame;
mod message;
mod types;
mod wire;
mod wire_error;

pub use error::{ProtoError, Result};
pub use frame::{Decoded, Frame, decode_frame, encode, encode_frame, encode_response};
pub use message::{Hello, Kind, Message, Request, Response, Welcome};
pub use wire_error::{ERROR_FIELDS_MAX, INTERNED_BYTES_MAX, INTERNED_MAX, WireError};

/// The first four bytes of a `Hello` body.
pub const MAGIC: [u8; 4] = *b"EDDY";
/// The protocol version this crate speaks best.
pub const PROTOCOL_VERSION: u16 = 1;
/// Every protocol version this crate speaks.
pub const SUPPORTED_VERSIONS: &[u16] = &[PROTOCOL_VERSION];
/// Most versions a `Hello` may offer.
pub const VERSIONS_MAX: u32 = 8;

/// The frame header: length (4), kind (1), flags (1), request id (8).
pub const FRAME_HEADER_BYTES: usize = 14;
/// The smallest frame length (the bytes after the length field): kind,
/// flags and request id with an empty body.
pub const FRAME_LENGTH_MIN: u32 = 10;
/// The largest frame length unless the `Welcome` says otherwise: 16 MiB.
pub const FRAME_BYTES_DEFAULT: u32 = 16 << 20;
/// The largest frame length any connection may allow: 64 MiB.
pub const FRAME_BYTES_CAP: u32 = 64 << 20;
/// The smallest `max_frame_bytes` a `Welcome` may set: 64 KiB.
pub const FRAME_BYTES_MIN: u32 = 64 << 10;
/// The largest frame length before the handshake is done (the `Hello`,
/// and the server's `Welcome` or `Error`): 64 KiB.
pub const HANDSHAKE_FRAME_BYTES: u32 = 64 << 10;
/// Flags bit 0: this list response continues in the next frame.
pub const FLAG_MORE: u8 = 0x01;
/// Most items in any list of one frame (a `Hello`'s versions and an
/// error's fields have their own, lower limits).
pub const LIST_ITEMS_MAX: u32 = 10_000;
