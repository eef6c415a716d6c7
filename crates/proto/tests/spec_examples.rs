//! `docs/protocol.md` agrees with the code: its hex examples are what the
//! encoder writes, and it lists every kind and error code.

mod support;

use bytes::Bytes;
use eddy_bus::Event;
use eddy_proto::{Frame, Hello, Kind, Request};
use support::*;

fn hello_example() -> Frame {
    Frame::new(
        1,
        Request::Hello(Hello {
            versions: vec![1],
            token: Some("s3cret".into()),
            client: "eddy-cli/0.1".into(),
        }),
    )
}

fn publish_example() -> Frame {
    let mut event = Event::new("OrderPlaced", Bytes::from_static(b"{\"n\":1}"))
        .with_id("e-1")
        .with_source("/shop")
        .with_key("order-1");
    event.time_ms = Some(1_700_000_000_000);
    Frame::new(
        2,
        Request::Publish {
            topic: "orders".into(),
            events: vec![event],
        },
    )
}

const SPEC: &str = include_str!("../../../docs/protocol.md");

/// The bytes of the example marked `<!-- example: name -->`: on each line
/// of its code block, the hex pairs before the first double space.
fn spec_example(name: &str) -> Vec<u8> {
    let marker = format!("<!-- example: {name} -->");
    let after = &SPEC[SPEC.find(&marker).expect("example marker") + marker.len()..];
    let block = after
        .split("```")
        .nth(1)
        .expect("a code block after the marker");
    block
        .lines()
        .skip(1) // the fence's info string
        .filter_map(|line| line.split("  ").next())
        .flat_map(str::split_whitespace)
        .map(|pair| u8::from_str_radix(pair, 16).expect("hex byte"))
        .collect()
}

#[test]
fn hex_examples_are_what_the_encoder_writes() {
    // Proves: the annotated Hello and Publish frames in the spec are the
    // exact bytes of the reference encoder, and decode back to the values
    // the spec describes.
    for (name, frame) in [("hello", hello_example()), ("publish", publish_example())] {
        let spec = spec_example(name);
        assert_eq!(spec, bytes_of(&frame), "example {name}");
        assert_eq!(decode_whole(&spec), frame);
    }
}

#[test]
fn the_spec_lists_every_kind_and_code() {
    // Proves: every kind appears in the spec's tables with its number and
    // name, and every error code — the bus's and the protocol's — with its
    // name.
    for &kind in Kind::ALL {
        let row = format!("| 0x{:02x} | {} |", kind.number(), kind.name());
        assert!(SPEC.contains(&row), "missing kind row {row:?}");
    }
    for e in every_bus_error() {
        let name = format!("{e:?}");
        let name = name.split([' ', '(']).next().unwrap_or_default();
        let row = format!("| {} | {name} |", e.code());
        assert!(SPEC.contains(&row), "missing error row {row:?}");
    }
    for code in 8001..=8015 {
        assert!(
            SPEC.contains(&format!("| {code} | ")),
            "missing protocol code {code}"
        );
    }
}
