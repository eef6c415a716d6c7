//! Frames: the length-prefixed unit on the wire, its header, and the pure
//! decoder and encoder.
//!
//! ```text
//! u32 LE  length       bytes after this field, 10..=max_frame_bytes
//! u8      kind         see `Kind`
//! u8      flags        bit 0 MORE (continuing list responses only); others 0
//! u64 LE  request id   chosen by the client, echoed by the server
//! ...     body         length - 10 bytes, exactly one message of `kind`
//! ```

use crate::error::{ProtoError, Result};
use crate::message::{
    Kind, Message, Response, get_request, get_response, put_dead_letters, put_deliveries,
    put_request, put_response, put_subscriptions, put_topics,
};
use crate::types::{put_all_slice_end, put_stream_slice_end};
use crate::wire::{Wire, Writer};
use crate::{FLAG_MORE, FRAME_BYTES_CAP, FRAME_HEADER_BYTES, FRAME_LENGTH_MIN, LIST_ITEMS_MAX};

/// One frame: a message and the request it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The client's id for the request; a response carries its request's.
    pub request_id: u64,
    /// The list of this response continues in the next frame with the
    /// same request id (flag bit 0, on [`Kind::may_continue`] kinds only).
    pub more: bool,
    /// The message.
    pub message: Message,
}

impl Frame {
    /// A frame that does not continue.
    pub fn new(request_id: u64, message: impl Into<Message>) -> Frame {
        Frame {
            request_id,
            more: false,
            message: message.into(),
        }
    }
}

/// What [`decode_frame`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// The buffer holds the start of a valid frame, or nothing; read at
    /// least `needed` more bytes and call again with all of them.
    Incomplete {
        /// Bytes missing, at least 1.
        needed: usize,
    },
    /// A whole frame, taking the first `consumed` bytes of the buffer.
    Frame {
        /// The frame.
        frame: Frame,
        /// Bytes it took; the next frame starts there.
        consumed: usize,
    },
}

/// Decodes the frame at the start of `buf`, accepting frame lengths up to
/// `max_frame_bytes` (itself capped at [`FRAME_BYTES_CAP`]).
///
/// A pure function: it never panics, reads nothing past the frame, and
/// allocates only for values the frame actually holds — nothing before the
/// whole frame is in `buf`, whatever its header claims. The length, kind
/// and flags are checked as soon as their bytes are in, so a stream that
/// starts wrong fails at once instead of waiting for a frame that will
/// never be valid; any prefix of a valid frame is `Incomplete`.
pub fn decode_frame(buf: &[u8], max_frame_bytes: u32) -> Result<Decoded> {
    let limit = max_frame_bytes.min(FRAME_BYTES_CAP);
    let Some(length) = buf.first_chunk::<4>().map(|b| u32::from_le_bytes(*b)) else {
        return Ok(Decoded::Incomplete {
            needed: FRAME_HEADER_BYTES - buf.len(),
        });
    };
    if length < FRAME_LENGTH_MIN {
        return Err(ProtoError::FrameTooShort(length));
    }
    if length > limit {
        return Err(ProtoError::FrameTooLarge {
            limit,
            actual: u64::from(length),
        });
    }
    let kind = match buf.get(4) {
        Some(&k) => Kind::from_u8(k).ok_or(ProtoError::UnknownKind(k))?,
        None => return Ok(incomplete(buf, length)),
    };
    let more = match buf.get(5) {
        Some(&flags) => check_flags(kind, flags)?,
        None => return Ok(incomplete(buf, length)),
    };
    let total = 4 + length as usize;
    let Some(frame) = buf.get(..total) else {
        return Ok(incomplete(buf, length));
    };
    let (header, body) = frame.split_at(FRAME_HEADER_BYTES);
    let mut id = [0; 8];
    id.copy_from_slice(&header[6..]);
    let mut r = crate::wire::Reader::new(body, FRAME_HEADER_BYTES);
    let message = if kind.is_request() {
        Message::Request(get_request(kind, &mut r)?)
    } else {
        Message::Response(get_response(kind, &mut r)?)
    };
    r.finish(kind.number())?;
    Ok(Decoded::Frame {
        frame: Frame {
            request_id: u64::from_le_bytes(id),
            more,
            message,
        },
        consumed: total,
    })
}

fn incomplete(buf: &[u8], length: u32) -> Decoded {
    Decoded::Incomplete {
        needed: 4 + length as usize - buf.len(),
    }
}

/// Whether the frame continues; unknown bits, and MORE where it is not
/// allowed, are errors.
fn check_flags(kind: Kind, flags: u8) -> Result<bool> {
    let allowed = if kind.may_continue() { FLAG_MORE } else { 0 };
    if flags & !allowed != 0 {
        return Err(ProtoError::BadFlags {
            kind: kind.number(),
            flags,
        });
    }
    Ok(flags & FLAG_MORE != 0)
}

/// Appends `frame` to `out` and returns its size in bytes. Refuses (and
/// leaves `out` as it was) a frame longer than `max_frame_bytes` (capped
/// at [`FRAME_BYTES_CAP`]), a list longer than its limit, a `Hello` with
/// no version, or MORE on a kind that cannot continue.
pub fn encode_frame(frame: &Frame, max_frame_bytes: u32, out: &mut Vec<u8>) -> Result<usize> {
    encode_message(
        frame.request_id,
        frame.more,
        &frame.message,
        max_frame_bytes,
        out,
    )
}

/// The bytes of `message` as one frame with `request_id`, within the
/// default [`crate::FRAME_BYTES_DEFAULT`].
pub fn encode(message: &Message, request_id: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_message(
        request_id,
        false,
        message,
        crate::FRAME_BYTES_DEFAULT,
        &mut out,
    )?;
    Ok(out)
}

fn encode_message(
    request_id: u64,
    more: bool,
    message: &Message,
    max_frame_bytes: u32,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let kind = message.kind();
    let flags = if more { FLAG_MORE } else { 0 };
    check_flags(kind, flags)?;
    write_frame(
        out,
        request_id,
        kind,
        flags,
        max_frame_bytes,
        |w| match message {
            Message::Request(r) => put_request(w, r),
            Message::Response(r) => put_response(w, r),
        },
    )
}

/// Writes one frame: header, body by `body`, then the length; undoes the
/// write on any error.
fn write_frame(
    out: &mut Vec<u8>,
    request_id: u64,
    kind: Kind,
    flags: u8,
    max_frame_bytes: u32,
    body: impl FnOnce(&mut Writer<'_>),
) -> Result<usize> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind.number());
    out.push(flags);
    out.extend_from_slice(&request_id.to_le_bytes());
    let mut w = Writer::new(out);
    body(&mut w);
    let written = w.finish();
    let size = out.len() - start;
    let limit = max_frame_bytes.min(FRAME_BYTES_CAP);
    let checked = written.and_then(|()| match u32::try_from(size - 4) {
        Ok(length) if length <= limit => Ok(length),
        _ => Err(ProtoError::FrameTooLarge {
            limit,
            actual: (size - 4) as u64,
        }),
    });
    match checked {
        Ok(length) => {
            out[start..start + 4].copy_from_slice(&length.to_le_bytes());
            Ok(size)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Appends `response` to `out` as one frame, or — if it is too large for
/// one frame and its kind allows it — as several: a continuing list
/// response ([`Kind::may_continue`]) as frames with MORE on all but the
/// last, a `Deliver` as independent `Deliver` frames. Returns how many
/// frames it wrote. Fails, leaving `out` as it was, if a single item does
/// not fit in a frame, or the response cannot be split.
pub fn encode_response(
    request_id: u64,
    response: &Response,
    max_frame_bytes: u32,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let kind = response.kind();
    let err = match write_frame(out, request_id, kind, 0, max_frame_bytes, |w| {
        put_response(w, response)
    }) {
        Ok(_) => return Ok(1),
        Err(e) => e,
    };
    if !matches!(
        err,
        ProtoError::FrameTooLarge { .. } | ProtoError::ListTooLong { .. }
    ) {
        return Err(err);
    }
    let split = Split {
        request_id,
        kind,
        max_frame_bytes,
    };
    let start = out.len();
    let written = match response {
        Response::Topics(v) => split.list(out, v, put_topics),
        Response::Subscriptions(v) => split.list(out, v, put_subscriptions),
        Response::Deliveries(v) | Response::Deliver(v) => split.list(out, v, put_deliveries),
        Response::DeadLetterList(v) => split.list(out, v, put_dead_letters),
        Response::ReadBatch(b) => split.list(out, &b.events, |w, events| {
            w.list("read events", events, LIST_ITEMS_MAX);
            w.put(&b.next_offset);
        }),
        Response::StreamSlice(s) => split.list(out, &s.events, |w, events| {
            w.list("stream events", events, LIST_ITEMS_MAX);
            put_stream_slice_end(w, s);
        }),
        Response::AllSlice(s) => split.list(out, &s.events, |w, events| {
            w.list("all events", events, LIST_ITEMS_MAX);
            put_all_slice_end(w, s);
        }),
        _ => Err(err),
    };
    if written.is_err() {
        out.truncate(start);
    }
    written
}

impl Response {
    /// Appends the next frame of a continuing response (one with MORE on
    /// the frames before it) to this one: the lists concatenate, and a
    /// `ReadBatch` takes the later `next_offset`, a `StreamSlice` or an
    /// `AllSlice` the later fields after its events. Fails if `next` is not
    /// the same kind, or the kind does not continue.
    pub fn absorb(&mut self, next: Response) -> Result<()> {
        match (self, next) {
            (Response::Topics(a), Response::Topics(b)) => a.extend(b),
            (Response::Subscriptions(a), Response::Subscriptions(b)) => a.extend(b),
            (Response::Deliveries(a), Response::Deliveries(b)) => a.extend(b),
            (Response::DeadLetterList(a), Response::DeadLetterList(b)) => a.extend(b),
            (Response::ReadBatch(a), Response::ReadBatch(b)) => {
                a.events.extend(b.events);
                a.next_offset = b.next_offset;
            }
            (Response::StreamSlice(a), Response::StreamSlice(b)) => {
                a.events.extend(b.events);
                a.last_version = b.last_version;
                a.next = b.next;
            }
            (Response::AllSlice(a), Response::AllSlice(b)) => {
                a.events.extend(b.events);
                a.next = b.next;
                a.head = b.head;
            }
            (_, next) => {
                return Err(ProtoError::UnexpectedKind {
                    kind: next.kind().number(),
                    why: "a continuation must have the kind of the frame it continues",
                });
            }
        }
        Ok(())
    }
}

/// Splits one list response over frames.
struct Split {
    request_id: u64,
    kind: Kind,
    max_frame_bytes: u32,
}

impl Split {
    /// Greedily packs `items` into frames of at most `max_frame_bytes` and
    /// [`LIST_ITEMS_MAX`] items, the body of each written by `body`.
    fn list<T: Wire>(
        &self,
        out: &mut Vec<u8>,
        items: &[T],
        body: impl Fn(&mut Writer<'_>, &[T]),
    ) -> Result<usize> {
        let limit = self.max_frame_bytes.min(FRAME_BYTES_CAP) as usize;
        // The frame length with no items; a count varint of up to 3 bytes
        // (10,000 items) replaces the empty list's 1 byte.
        let mut empty = Vec::new();
        body(&mut Writer::new(&mut empty), &[]);
        let fixed = FRAME_LENGTH_MIN as usize + empty.len() + 2;
        let mut sizes = Vec::with_capacity(items.len());
        let mut scratch = Vec::new();
        for item in items {
            scratch.clear();
            item.put(&mut Writer::new(&mut scratch));
            sizes.push(scratch.len());
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let mut length = fixed;
            while end < items.len() && end - start < LIST_ITEMS_MAX as usize {
                if length + sizes[end] > limit {
                    break;
                }
                length += sizes[end];
                end += 1;
            }
            if end == start {
                return Err(ProtoError::FrameTooLarge {
                    limit: limit as u32,
                    actual: (fixed + sizes[start]) as u64,
                });
            }
            chunks.push(start..end);
            start = end;
        }
        let continued = self.kind.may_continue();
        let count = chunks.len();
        for (i, range) in chunks.into_iter().enumerate() {
            let flags = if continued && i + 1 < count {
                FLAG_MORE
            } else {
                0
            };
            let chunk = &items[range];
            write_frame(
                out,
                self.request_id,
                self.kind,
                flags,
                self.max_frame_bytes,
                |w| body(w, chunk),
            )?;
        }
        Ok(count)
    }
}
