//! The primitive encodings every message is made of: fixed little-endian
//! integers, LEB128 varints (zigzag for signed), strings, byte strings,
//! options and lists, with a [`Writer`] and a checking [`Reader`].
//!
//! The encoding is canonical: varints are minimal, option and boolean
//! bytes are 0 or 1. The reader refuses anything else, so a value has
//! exactly one encoding and decode-then-encode gives back the same bytes.

use bytes::Bytes;

use crate::error::{ProtoError, Result};

/// Appends LEB128 (unsigned, little-endian base 128) `v` to `buf`.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends values to a buffer. A list longer than its protocol limit is
/// recorded as the writer's error (the first one wins) and written anyway;
/// the frame encoder checks [`Writer::finish`] and refuses the frame.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    pub(crate) buf: &'a mut Vec<u8>,
    error: Option<ProtoError>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { buf, error: None }
    }

    /// The first error met while writing, if any.
    pub(crate) fn finish(self) -> Result<()> {
        self.error.map_or(Ok(()), Err)
    }

    /// Records `e` as the writer's error unless one is recorded already.
    pub(crate) fn refuse(&mut self, e: ProtoError) {
        self.error.get_or_insert(e);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn u16_le(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32_le(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn varint(&mut self, v: u64) {
        put_varint(self.buf, v);
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    /// A value of any [`Wire`] type.
    pub(crate) fn put<T: Wire>(&mut self, v: &T) {
        v.put(self);
    }
    /// A list: a varint count, then the items. `limit` is the protocol's
    /// most items in one frame.
    pub(crate) fn list<T: Wire>(&mut self, what: &'static str, items: &[T], limit: u32) {
        if items.len() as u64 > u64::from(limit) {
            self.refuse(ProtoError::ListTooLong {
                what,
                limit,
                actual: items.len() as u64,
            });
        }
        self.varint(items.len() as u64);
        for item in items {
            item.put(self);
        }
    }
}

/// Reads what a [`Writer`] wrote from one frame's body, checking every
/// length, tag and range. Errors name the field and its position in the
/// frame.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Position of `buf[0]` within the frame, for error positions.
    base: usize,
}

/// Items preallocated for a list before any is read: a count is only a
/// claim, so a list's memory grows with the items actually decoded.
const LIST_PREALLOC_MAX: usize = 64;

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// The current position within the frame.
    pub(crate) fn at(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn malformed(&self, what: &'static str, at: usize, why: &'static str) -> ProtoError {
        ProtoError::Malformed { what, at, why }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(ProtoError::Truncated {
                what,
                at: self.at(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16_le(&mut self, what: &'static str) -> Result<u16> {
        self.array(what).map(u16::from_le_bytes)
    }
    pub(crate) fn u32_le(&mut self, what: &'static str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }
    pub(crate) fn magic(&mut self, what: &'static str) -> Result<[u8; 4]> {
        self.array(what)
    }

    /// A minimal LEB128 varint of at most 10 bytes that fits in a u64.
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64> {
        let at = self.at();
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self
                .u8(what)
                .map_err(|_| ProtoError::Truncated { what, at })?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(self.malformed(what, at, "varint overflows 64 bits"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(self.malformed(what, at, "varint is not minimal"));
                }
                return Ok(v);
            }
        }
        Err(self.malformed(what, at, "varint longer than 10 bytes"))
    }

    /// A varint that must fit in a u32.
    pub(crate) fn varint_u32(&mut self, what: &'static str) -> Result<u32> {
        let at = self.at();
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| self.malformed(what, at, "value does not fit in 32 bits"))
    }

    /// A tag byte that must be below `count`.
    pub(crate) fn tag(&mut self, what: &'static str, count: u8) -> Result<u8> {
        let at = self.at();
        let t = self.u8(what)?;
        if t >= count {
            return Err(self.malformed(what, at, "unknown tag"));
        }
        Ok(t)
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let at = self.at();
        let len = self.varint(what)?;
        match usize::try_from(len) {
            Ok(n) if n <= self.remaining() => self.take(n, what),
            _ => Err(ProtoError::Truncated { what, at }),
        }
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String> {
        let raw = self.bytes(what)?;
        let at = self.at() - raw.len();
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| ProtoError::BadUtf8 { what, at })
    }

    /// A value of any [`Wire`] type.
    pub(crate) fn get<T: Wire>(&mut self, what: &'static str) -> Result<T> {
        T::get(self, what)
    }

    /// A list of at most `limit` items. A count the remaining bytes cannot
    /// hold (every item takes at least one byte) is refused before any
    /// item is read or allocated.
    pub(crate) fn list<T: Wire>(&mut self, what: &'static str, limit: u32) -> Result<Vec<T>> {
        let at = self.at();
        let count = self.varint(what)?;
        if count > u64::from(limit) {
            return Err(ProtoError::ListTooLong {
                what,
                limit,
                actual: count,
            });
        }
        let count = count as usize; // ≤ limit, a u32
        if count > self.remaining() {
            return Err(ProtoError::Truncated { what, at });
        }
        let mut out = Vec::with_capacity(count.min(LIST_PREALLOC_MAX));
        for _ in 0..count {
            out.push(T::get(self, what)?);
        }
        Ok(out)
    }

    /// Succeeds if every byte was read.
    pub(crate) fn finish(&self, kind: u8) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(ProtoError::TrailingBytes {
                kind,
                at: self.at(),
                extra,
            }),
        }
    }
}

/// A type with one encoding on the wire.
pub(crate) trait Wire: Sized {
    /// Appends the encoding.
    fn put(&self, w: &mut Writer<'_>);
    /// Reads one value; `what` names it in errors when the type has no
    /// better name for the failing part.
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self>;
}

/// `u8`: one byte.
impl Wire for u8 {
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(*self);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.u8(what)
    }
}

/// `u16`: two bytes, little-endian (protocol versions).
impl Wire for u16 {
    fn put(&self, w: &mut Writer<'_>) {
        w.u16_le(*self);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.u16_le(what)
    }
}

/// `u64`: a varint.
impl Wire for u64 {
    fn put(&self, w: &mut Writer<'_>) {
        w.varint(*self);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.varint(what)
    }
}

/// `u32`: a varint that must fit in 32 bits.
impl Wire for u32 {
    fn put(&self, w: &mut Writer<'_>) {
        w.varint(u64::from(*self));
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.varint_u32(what)
    }
}

/// `i64`: zigzag, then a varint (0, -1, 1, -2 … → 0, 1, 2, 3 …).
impl Wire for i64 {
    fn put(&self, w: &mut Writer<'_>) {
        w.varint(((*self << 1) ^ (*self >> 63)) as u64);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        let v = r.varint(what)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
}

/// `bool`: one byte, 0 or 1.
impl Wire for bool {
    fn put(&self, w: &mut Writer<'_>) {
        w.u8(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok(r.tag(what, 2)? == 1)
    }
}

/// `string`: a varint byte length, then UTF-8.
impl Wire for String {
    fn put(&self, w: &mut Writer<'_>) {
        w.bytes(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.string(what)
    }
}

/// `bytes`: a varint length, then the bytes.
impl Wire for Bytes {
    fn put(&self, w: &mut Writer<'_>) {
        w.bytes(self);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        r.bytes(what).map(Bytes::copy_from_slice)
    }
}

/// `option<T>`: a byte 0 (absent) or 1 followed by the value.
impl<T: Wire> Wire for Option<T> {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        match r.tag(what, 2)? {
            0 => Ok(None),
            _ => T::get(r, what).map(Some),
        }
    }
}

/// A pair: the first value, then the second.
impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put(&self, w: &mut Writer<'_>) {
        self.0.put(w);
        self.1.put(w);
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        Ok((A::get(r, what)?, B::get(r, what)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader<'_> {
        Reader::new(bytes, 0)
    }

    #[test]
    fn varints_are_leb128_minimal_and_bounded() {
        // Proves: varints encode as LEB128, decode back over the whole u64
        // range, and the reader refuses non-minimal, overlong, overflowing
        // and cut varints with an error, never a panic.
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut r = reader(&buf);
            assert_eq!(r.varint("v").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
        let mut buf = Vec::new();
        put_varint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
        let bad: [&[u8]; 5] = [
            &[0x80, 0x00],                                                 // 0 written in two bytes
            &[0xff; 11],                                                   // longer than 10 bytes
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], // > u64::MAX
            &[0x80],                                                       // cut
            &[],
        ];
        for b in bad {
            assert!(reader(b).varint("v").is_err(), "{b:?}");
        }
        assert!(matches!(
            reader(&[0x80, 0x80, 0x80, 0x80, 0x10]).varint_u32("v"),
            Err(ProtoError::Malformed { .. })
        ));
    }

    #[test]
    fn zigzag_orders_small_magnitudes_first() {
        // Proves: i64 is zigzag-encoded (0, -1, 1, -2 → 0, 1, 2, 3) and
        // round-trips at the extremes.
        for (v, z) in [(0i64, 0u8), (-1, 1), (1, 2), (-2, 3)] {
            let mut buf = Vec::new();
            Writer::new(&mut buf).put(&v);
            assert_eq!(buf, [z]);
        }
        for v in [i64::MIN, i64::MAX, -5, 1_700_000_000_000] {
            let mut buf = Vec::new();
            Writer::new(&mut buf).put(&v);
            assert_eq!(reader(&buf).get::<i64>("t").unwrap(), v);
        }
    }

    #[test]
    fn lengths_counts_tags_and_utf8_are_checked() {
        // Proves: a string length or list count past the end is Truncated
        // (before any allocation), a count above the limit is ListTooLong,
        // bad UTF-8 is BadUtf8, and option/bool bytes other than 0/1 are
        // Malformed.
        assert!(matches!(
            reader(&[5, b'a']).string("s"),
            Err(ProtoError::Truncated { what: "s", at: 0 })
        ));
        assert!(matches!(
            reader(&[2, 0xc3, 0x28]).string("s"),
            Err(ProtoError::BadUtf8 { what: "s", at: 1 })
        ));
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        assert!(matches!(
            reader(&huge).bytes("b"),
            Err(ProtoError::Truncated { .. })
        ));
        assert!(matches!(
            reader(&[200, 1, 1]).list::<u8>("l", 1000),
            Err(ProtoError::Truncated { .. })
        ));
        assert!(matches!(
            reader(&[3, 1, 2, 3]).list::<u8>("l", 2),
            Err(ProtoError::ListTooLong {
                limit: 2,
                actual: 3,
                ..
            })
        ));
        assert!(reader(&[2]).get::<bool>("b").is_err());
        assert!(reader(&[2, 0]).get::<Option<u8>>("o").is_err());
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.list("l", &[1u8, 2, 3], 2);
        assert!(matches!(w.finish(), Err(ProtoError::ListTooLong { .. })));
    }
}
