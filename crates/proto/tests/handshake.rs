//! The handshake: `Hello`, version negotiation, `Welcome`.

mod support;

use eddy_proto::{
    FRAME_BYTES_CAP, FRAME_BYTES_MIN, FRAME_HEADER_BYTES, Frame, HANDSHAKE_FRAME_BYTES, Hello,
    PROTOCOL_VERSION, ProtoError, Response, Welcome, decode_frame, encode_frame,
};
use support::*;

#[test]
fn the_highest_common_version_wins() {
    // Proves: negotiation picks the highest version both sides speak,
    // ignores versions only the client knows, and fails with
    // UnsupportedVersion (naming both lists) when there is none.
    let hello = Hello::new("test", None);
    assert_eq!(hello.versions, [PROTOCOL_VERSION]);
    assert_eq!(hello.negotiate(), Ok(PROTOCOL_VERSION));
    let newer = Hello {
        versions: vec![9, PROTOCOL_VERSION, 3],
        ..hello.clone()
    };
    assert_eq!(newer.negotiate(), Ok(PROTOCOL_VERSION));
    let alien = Hello {
        versions: vec![0, 7],
        ..hello
    };
    assert_eq!(
        alien.negotiate(),
        Err(ProtoError::UnsupportedVersion {
            offered: vec![0, 7],
            supported: vec![PROTOCOL_VERSION],
        })
    );
}

#[test]
fn hello_is_bounded() {
    // Proves: a Hello offers at most 8 versions, and a Hello larger than
    // the handshake limit is refused by a server reading with that limit.
    let nine = Hello {
        versions: (1..=9).collect(),
        token: None,
        client: "c".into(),
    };
    assert!(matches!(
        encode_frame(
            &Frame::new(1, eddy_proto::Request::Hello(nine)),
            HANDSHAKE_FRAME_BYTES,
            &mut Vec::new()
        ),
        Err(ProtoError::ListTooLong { limit: 8, .. })
    ));
    let big = Hello::new("c".repeat(HANDSHAKE_FRAME_BYTES as usize), Some("t".into()));
    let bytes = bytes_of(&Frame::new(1, eddy_proto::Request::Hello(big)));
    assert!(matches!(
        decode_frame(&bytes, HANDSHAKE_FRAME_BYTES),
        Err(ProtoError::FrameTooLarge { .. })
    ));
}

#[test]
fn welcome_limits_are_checked() {
    // Proves: a Welcome whose max_frame_bytes is outside 64 KiB..=64 MiB,
    // or whose max_in_flight_requests is 0, is refused by the decoder.
    let ok = Welcome {
        version: 1,
        server: "s".into(),
        max_frame_bytes: FRAME_BYTES_MIN,
        max_in_flight_requests: 1,
    };
    let bad = [
        Welcome {
            max_frame_bytes: FRAME_BYTES_MIN - 1,
            ..ok.clone()
        },
        Welcome {
            max_frame_bytes: FRAME_BYTES_CAP + 1,
            ..ok.clone()
        },
        Welcome {
            max_in_flight_requests: 0,
            ..ok.clone()
        },
    ];
    assert_eq!(
        decode_whole(&bytes_of(&Frame::new(0, Response::Welcome(ok.clone())))),
        Frame::new(0, Response::Welcome(ok))
    );
    for w in bad {
        let bytes = bytes_of(&Frame::new(0, Response::Welcome(w)));
        assert!(matches!(
            decode_frame(&bytes, HANDSHAKE_FRAME_BYTES),
            Err(ProtoError::Malformed { at, .. }) if at > FRAME_HEADER_BYTES
        ));
    }
}
