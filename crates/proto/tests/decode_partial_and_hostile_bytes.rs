//! The decoder on cut, damaged and made-up bytes: `Incomplete` or a typed
//! error, never a panic, never more than it was given.

mod support;

use eddy_proto::{
    Decoded, FRAME_BYTES_CAP, FRAME_BYTES_DEFAULT, FRAME_HEADER_BYTES, Frame, Hello, ProtoError,
    Request, Response, decode_frame, encode_frame,
};
use proptest::prelude::*;
use support::*;

fn header(length: u32, kind: u8, flags: u8, request_id: u64) -> Vec<u8> {
    let mut b = length.to_le_bytes().to_vec();
    b.push(kind);
    b.push(flags);
    b.extend_from_slice(&request_id.to_le_bytes());
    b
}

#[test]
fn every_prefix_of_a_valid_frame_is_incomplete() {
    // Proves: for every kind, every proper prefix of a valid frame
    // (including the empty buffer) is `Incomplete` with `needed` ≥ 1 and
    // never more than the bytes actually missing, never an error.
    for frame in every_kind() {
        let bytes = bytes_of(&frame);
        for cut in 0..bytes.len() {
            match decode_frame(&bytes[..cut], FRAME_BYTES_DEFAULT) {
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(
                        needed >= 1 && needed <= bytes.len() - cut,
                        "{cut}: {needed}"
                    );
                    if cut >= 4 {
                        assert_eq!(needed, bytes.len() - cut, "exact once the length is in");
                    }
                }
                other => panic!("{:?} cut at {cut}: {other:?}", frame.message.kind()),
            }
        }
    }
}

#[test]
fn oversized_lengths_are_refused_from_the_length_field_alone() {
    // Proves: a declared length above the limit (or below the header) is
    // an error as soon as the 4 length bytes are in — nothing waits for or
    // allocates the claimed bytes — and a limit above the hard cap is
    // clamped to the cap.
    let limit = 1024;
    assert_eq!(
        decode_frame(&1025u32.to_le_bytes(), limit),
        Err(ProtoError::FrameTooLarge {
            limit,
            actual: 1025
        })
    );
    assert_eq!(
        decode_frame(&u32::MAX.to_le_bytes(), u32::MAX),
        Err(ProtoError::FrameTooLarge {
            limit: FRAME_BYTES_CAP,
            actual: u64::from(u32::MAX)
        })
    );
    assert_eq!(
        decode_frame(&9u32.to_le_bytes(), limit),
        Err(ProtoError::FrameTooShort(9))
    );
    // At the limit, the frame is merely incomplete.
    assert_eq!(
        decode_frame(&limit.to_le_bytes(), limit),
        Ok(Decoded::Incomplete {
            needed: limit as usize
        })
    );
}

#[test]
fn unknown_kinds_and_flags_are_refused_at_once() {
    // Proves: an unknown kind byte, or a flags byte with an unknown bit or
    // with MORE on a kind that cannot continue, is an error as soon as that
    // byte is in, before the body arrives; MORE is accepted on a list
    // response.
    for kind in [0x00, 0x03, 0x7f, 0x80, 0xb9, 0xfe] {
        let b = header(100, kind, 0, 1);
        assert_eq!(
            decode_frame(&b[..5], FRAME_BYTES_DEFAULT),
            Err(ProtoError::UnknownKind(kind)),
            "0x{kind:02x}"
        );
    }
    for flags in [0x02, 0x80, 0xff] {
        let b = header(100, 0x02, flags, 1);
        assert_eq!(
            decode_frame(&b[..6], FRAME_BYTES_DEFAULT),
            Err(ProtoError::BadFlags { kind: 0x02, flags })
        );
    }
    let ping_more = header(10, 0x02, 0x01, 1);
    assert!(matches!(
        decode_frame(&ping_more, FRAME_BYTES_DEFAULT),
        Err(ProtoError::BadFlags { .. })
    ));
    let topics_more = {
        let mut b = header(11, 0x91, 0x01, 1);
        b.push(0); // an empty list of topics
        b
    };
    match decode_frame(&topics_more, FRAME_BYTES_DEFAULT) {
        Ok(Decoded::Frame { frame, .. }) => {
            assert!(frame.more);
            assert_eq!(
                frame.message,
                eddy_proto::Message::Response(Response::Topics(vec![]))
            );
        }
        other => panic!("{other:?}"),
    }
    let frame = Frame {
        more: true,
        ..Frame::new(1, Request::Ping)
    };
    assert!(matches!(
        encode_frame(&frame, FRAME_BYTES_DEFAULT, &mut Vec::new()),
        Err(ProtoError::BadFlags { .. })
    ));
}

#[test]
fn bodies_must_be_exact() {
    // Proves: bytes after a message's last field are TrailingBytes, a body
    // that stops inside a field is Truncated (positions counted from the
    // frame's first byte), a wrong magic is BadMagic, and a Hello with no
    // version is refused both ways.
    let mut ping = header(11, 0x02, 0, 1);
    ping.push(0xaa);
    assert_eq!(
        decode_frame(&ping, FRAME_BYTES_DEFAULT),
        Err(ProtoError::TrailingBytes {
            kind: 0x02,
            at: FRAME_HEADER_BYTES,
            extra: 1
        })
    );
    let mut describe = header(12, 0x12, 0, 1);
    describe.extend_from_slice(&[5, b'a']); // a 5-byte name with 1 byte
    assert_eq!(
        decode_frame(&describe, FRAME_BYTES_DEFAULT),
        Err(ProtoError::Truncated {
            what: "topic name",
            at: FRAME_HEADER_BYTES
        })
    );
    let mut hello = bytes_of(&Frame::new(1, Request::Hello(Hello::new("c", None))));
    hello[FRAME_HEADER_BYTES] = b'X';
    assert_eq!(
        decode_frame(&hello, FRAME_BYTES_DEFAULT),
        Err(ProtoError::BadMagic)
    );
    let none = Request::Hello(Hello {
        versions: vec![],
        token: None,
        client: "c".into(),
    });
    assert!(encode_frame(&Frame::new(1, none), FRAME_BYTES_DEFAULT, &mut Vec::new()).is_err());
    let mut empty = header(10 + 4 + 1 + 1 + 1, 0x01, 0, 1);
    empty.extend_from_slice(b"EDDY");
    empty.extend_from_slice(&[0, 0, 0]); // no versions, no token, "" client
    assert!(matches!(
        decode_frame(&empty, FRAME_BYTES_DEFAULT),
        Err(ProtoError::Malformed {
            what: "hello versions",
            ..
        })
    ));
}

#[test]
fn list_counts_that_cannot_fit_are_refused_before_allocating() {
    // Proves: a list count above the protocol limit is ListTooLong, and a
    // count within the limit that the remaining bytes cannot hold is
    // Truncated — both decided from the count alone.
    let mut ack = header(0, 0x31, 0, 1);
    ack.extend_from_slice(&[1, b's']); // subscription "s"
    ack.extend_from_slice(&[0x91, 0x4e]); // 10,001 ids
    let length = (ack.len() - 4) as u32;
    ack[..4].copy_from_slice(&length.to_le_bytes());
    assert!(matches!(
        decode_frame(&ack, FRAME_BYTES_DEFAULT),
        Err(ProtoError::ListTooLong {
            limit: 10_000,
            actual: 10_001,
            ..
        })
    ));
    let n = ack.len();
    ack[n - 2..].copy_from_slice(&[0x90, 0x4e]); // 10,000 ids, no bytes
    assert!(matches!(
        decode_frame(&ack, FRAME_BYTES_DEFAULT),
        Err(ProtoError::Truncated {
            what: "ack ids",
            ..
        })
    ));
}

/// Checks what `decode_frame` may return for `bytes`; a whole frame must
/// also re-encode to exactly the bytes it consumed.
fn check_decode(bytes: &[u8], limit: u32) -> Result<(), TestCaseError> {
    match decode_frame(bytes, limit) {
        Ok(Decoded::Incomplete { needed }) => prop_assert!(needed >= 1),
        Ok(Decoded::Frame { frame, consumed }) => {
            prop_assert!(consumed <= bytes.len());
            prop_assert!(consumed >= FRAME_HEADER_BYTES);
            let mut again = Vec::new();
            encode_frame(&frame, limit, &mut again).expect("a decoded frame encodes");
            prop_assert_eq!(&again[..], &bytes[..consumed], "canonical");
        }
        Err(e) => prop_assert!((8001..=8099).contains(&e.code())),
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        limit in prop_oneof![Just(FRAME_BYTES_DEFAULT), 0u32..600, Just(u32::MAX)],
    ) {
        // Proves: any bytes at any limit give Incomplete, a frame that took
        // no more than it was given (and re-encodes to those bytes), or a
        // protocol error — never a panic.
        check_decode(&bytes, limit)?;
    }

    #[test]
    fn plausible_headers_with_arbitrary_bodies_never_panic(
        kind in proptest::sample::select(eddy_proto::Kind::ALL.to_vec()),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        flags in prop_oneof![Just(0u8), Just(1u8)],
    ) {
        // Proves: a valid header of every kind in front of arbitrary body
        // bytes reaches each body decoder, which returns a frame or an
        // error, never a panic.
        let mut bytes = header(10 + body.len() as u32, kind.number(), flags, 9);
        bytes.extend_from_slice(&body);
        check_decode(&bytes, FRAME_BYTES_DEFAULT)?;
    }

    #[test]
    fn damaged_valid_frames_never_panic(
        which in 0usize..66,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        // Proves: valid frames of every kind with a few bytes overwritten
        // (length field excepted, so the body decoders run) and cut at any
        // point still decode to a frame, Incomplete, or an error.
        let frames = every_kind();
        let mut bytes = bytes_of(&frames[which % frames.len()]);
        for (at, v) in edits {
            let i = 4 + at.index(bytes.len() - 4);
            bytes[i] = v;
        }
        check_decode(&bytes, FRAME_BYTES_DEFAULT)?;
        let end = cut.index(bytes.len() + 1);
        check_decode(&bytes[..end], FRAME_BYTES_DEFAULT)?;
    }
}
