//! Errors cross the wire as stable codes and come back as the same
//! `BusError`.

mod support;

use std::collections::BTreeSet;

use eddy_bus::BusError;
use eddy_proto::{Frame, ProtoError, Response, WireError};
use support::*;

fn every_proto_error() -> Vec<ProtoError> {
    vec![
        ProtoError::FrameTooLarge {
            limit: 10,
            actual: 11,
        },
        ProtoError::FrameTooShort(3),
        ProtoError::UnknownKind(0x7f),
        ProtoError::BadFlags {
            kind: 0x02,
            flags: 0x80,
        },
        ProtoError::Truncated { what: "x", at: 14 },
        ProtoError::Malformed {
            what: "x",
            at: 14,
            why: "unknown tag",
        },
        ProtoError::BadUtf8 { what: "x", at: 14 },
        ProtoError::TrailingBytes {
            kind: 0x02,
            at: 14,
            extra: 1,
        },
        ProtoError::ListTooLong {
            what: "x",
            limit: 1,
            actual: 2,
        },
        ProtoError::BadMagic,
        ProtoError::UnsupportedVersion {
            offered: vec![7],
            supported: vec![1],
        },
        ProtoError::UnexpectedKind {
            kind: 0x81,
            why: "a client sends requests",
        },
        ProtoError::TooManyInFlight { limit: 4 },
        ProtoError::DuplicateRequestId(5),
        ProtoError::Unauthenticated,
    ]
}

#[test]
fn every_bus_error_round_trips_through_a_frame() {
    // Proves: every BusError variant becomes a wire error with its own
    // code and text, travels in an Error frame, and comes back as the equal
    // BusError — structured fields included (a client can match on
    // `LimitExceeded { setting, .. }` as on the embedded bus).
    let mut errors = every_bus_error();
    let codes: BTreeSet<u16> = errors.iter().map(BusError::code).collect();
    assert_eq!(codes.len(), errors.len(), "one variant per code");
    // A conflict on a stream that does not exist has no actual version.
    errors.push(BusError::WrongExpectedVersion {
        stream: "order-2".into(),
        expected: "exists".into(),
        actual: None,
    });
    for e in errors {
        let wire = WireError::from(&e);
        assert_eq!(wire.code, e.code());
        assert_eq!(wire.message, e.to_string());
        let frame = Frame::new(1, Response::Error(wire));
        let back = match decode_whole(&bytes_of(&frame)).message {
            eddy_proto::Message::Response(Response::Error(w)) => w.to_bus_error(),
            other => panic!("{other:?}"),
        };
        assert_eq!(back, e);
        assert_eq!(back.to_string(), e.to_string());
    }
}

#[test]
fn ack_outcomes_and_stream_ends_carry_errors() {
    // Proves: per-id ack outcomes and a stream's end carry the same
    // errors, and `Ok` outcomes stay `Ok`.
    let errors = every_bus_error();
    let outcomes: Vec<Result<(), WireError>> = errors
        .iter()
        .map(|e| Err(WireError::from(e)))
        .chain([Ok(())])
        .collect();
    let frame = Frame::new(2, Response::Acked(outcomes.clone()));
    assert_eq!(decode_whole(&bytes_of(&frame)), frame);
    let back: Vec<Result<(), BusError>> = outcomes
        .into_iter()
        .map(|o| o.map_err(BusError::from))
        .collect();
    let expected: Vec<Result<(), BusError>> = errors.into_iter().map(Err).chain([Ok(())]).collect();
    assert_eq!(back, expected);
    let end = Frame::new(
        3,
        Response::StreamEnd {
            error: Some(BusError::Closed.into()),
        },
    );
    assert_eq!(decode_whole(&bytes_of(&end)), end);
}

#[test]
fn protocol_codes_are_their_own_area() {
    // Proves: protocol errors have distinct 8xxx codes, which no BusError
    // uses, and reach a client's bus as `Unavailable` naming the code.
    let bus_codes: BTreeSet<u16> = every_bus_error().iter().map(BusError::code).collect();
    let mut seen = BTreeSet::new();
    for e in every_proto_error() {
        let code = e.code();
        assert!((8001..=8999).contains(&code), "{e:?}");
        assert!(seen.insert(code), "{code} used twice");
        assert!(!bus_codes.contains(&code));
        let wire = WireError::from(&e);
        assert_eq!((wire.code, wire.message.as_str()), (code, &*e.to_string()));
        match wire.to_bus_error() {
            BusError::Unavailable(text) => {
                assert!(text.contains(&code.to_string()) && text.contains(&e.to_string()))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen.len(), 15);
}

#[test]
fn unknown_codes_become_unavailable() {
    // Proves: a code this client does not know (a newer server's) still
    // maps to a BusError, keeping the code and message in its text.
    let e = WireError::new(7999, "something new").to_bus_error();
    assert_eq!(e, BusError::Unavailable("error 7999: something new".into()));
}
