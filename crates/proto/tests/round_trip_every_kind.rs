//! Every message kind survives encode → decode unchanged, and its encoding
//! is canonical.

mod support;

use std::collections::BTreeSet;

use eddy_bus::{AllFilter, AllSlice, ExpectedVersion, RecordedEvent, StreamSlice};
use eddy_proto::{
    FRAME_BYTES_DEFAULT, Frame, Kind, Message, Request, Response, decode_frame, encode,
    encode_frame,
};
use proptest::prelude::*;
use support::*;

#[test]
fn every_kind_round_trips() {
    // Proves: the table holds one non-trivial value of every kind in
    // `Kind::ALL`, and each comes back equal after encode → decode, with
    // its kind byte and request id in the header.
    let frames = every_kind();
    let kinds: BTreeSet<u8> = frames.iter().map(|f| f.message.kind().number()).collect();
    let all: BTreeSet<u8> = Kind::ALL.iter().map(|k| k.number()).collect();
    assert_eq!(kinds, all, "one sample per kind");
    assert_eq!(frames.len(), Kind::ALL.len());
    for frame in frames {
        let bytes = bytes_of(&frame);
        assert_eq!(bytes[4], frame.message.kind().number(), "kind byte");
        assert_eq!(bytes[6..14], frame.request_id.to_le_bytes(), "request id");
        assert_eq!(
            u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4,
            "length counts the bytes after it"
        );
        assert_eq!(decode_whole(&bytes), frame, "{:?}", frame.message.kind());
    }
}

#[test]
fn kinds_are_stable_and_paired() {
    // Proves: kind numbers convert both ways, requests have the high bit
    // clear and responses set, and each request's response (where it has
    // one) is its own kind with the high bit set.
    for &k in Kind::ALL {
        assert_eq!(Kind::from_u8(k.number()), Some(k));
    }
    let pairs = [
        (Kind::Hello, Kind::Welcome),
        (Kind::Ping, Kind::Pong),
        (Kind::CreateTopic, Kind::TopicCreated),
        (Kind::Publish, Kind::Published),
        (Kind::Fetch, Kind::Deliveries),
        (Kind::Subscribe, Kind::Deliver),
        (Kind::Unsubscribe, Kind::StreamEnd),
        (Kind::DeadLetters, Kind::DeadLetterList),
        (Kind::SubscriptionStats, Kind::SubscriptionStatsShown),
        (Kind::Append, Kind::Appended),
        (Kind::ReadStream, Kind::StreamSlice),
        (Kind::ReadAll, Kind::AllSlice),
        (Kind::StreamInfo, Kind::StreamInfoShown),
        (Kind::SetStreamMetadata, Kind::MetadataSet),
        (Kind::DeleteStream, Kind::StreamDeleted),
    ];
    for (req, resp) in pairs {
        assert!(req.is_request() && !resp.is_request());
        assert_eq!(req.number() | 0x80, resp.number(), "{req:?} → {resp:?}");
    }
    assert_eq!(Kind::Error.number(), 0xff);
    for n in 0..=u8::MAX {
        let requests_without_response = [Kind::Credit];
        if let Some(k) = Kind::from_u8(n).filter(|k| k.is_request()) {
            let answered = Kind::from_u8(n | 0x80).is_some();
            assert!(answered || requests_without_response.contains(&k), "{k:?}");
        }
    }
}

#[test]
fn encoding_is_canonical() {
    // Proves: decoding then re-encoding gives back the same bytes for every
    // kind (one encoding per value), and `encode` agrees with `encode_frame`.
    for frame in every_kind() {
        let bytes = bytes_of(&frame);
        assert_eq!(bytes_of(&decode_whole(&bytes)), bytes);
        assert_eq!(encode(&frame.message, frame.request_id).unwrap(), bytes);
    }
}

#[test]
fn frames_follow_each_other_in_a_buffer() {
    // Proves: pipelined frames in one buffer decode one after another, each
    // reporting how many bytes it took.
    let frames = every_kind();
    let mut buf = Vec::new();
    for f in &frames {
        encode_frame(f, FRAME_BYTES_DEFAULT, &mut buf).unwrap();
    }
    let mut at = 0;
    for f in &frames {
        match decode_frame(&buf[at..], FRAME_BYTES_DEFAULT).unwrap() {
            eddy_proto::Decoded::Frame { frame, consumed } => {
                assert_eq!(&frame, f);
                at += consumed;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(at, buf.len());
}

proptest! {
    #[test]
    fn any_publish_round_trips(
        events in proptest::collection::vec(any_event(), 0..8),
        topic in "\\PC{0,20}",
        id in any::<u64>(),
    ) {
        // Proves: a Publish of any events — every attribute present or
        // absent, any Unicode text, any data bytes, any headers — decodes to
        // the same events.
        let frame = Frame::new(id, Request::Publish { topic, events });
        let bytes = bytes_of(&frame);
        prop_assert_eq!(decode_whole(&bytes), frame);
    }

    #[test]
    fn any_deliveries_round_trip(
        deliveries in proptest::collection::vec(any_delivery(), 0..6),
        id in any::<u64>(),
        push in any::<bool>(),
    ) {
        // Proves: fetched and pushed deliveries of any events, with any
        // ack ids, attempts and (negative too) times, decode unchanged.
        let message = if push {
            Response::Deliver(deliveries)
        } else {
            Response::Deliveries(deliveries)
        };
        let frame = Frame::new(id, Message::Response(message));
        let bytes = bytes_of(&frame);
        prop_assert_eq!(decode_whole(&bytes), frame);
    }

    #[test]
    fn any_store_append_and_slices_round_trip(
        events in proptest::collection::vec(any_event(), 0..6),
        stream in "\\PC{0,20}",
        (expected, version, position, ts) in (0u8..4, any::<u64>(), any::<u64>(), any::<i64>()),
        (last, next, head) in (proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>()), any::<u64>()),
        (filter_tag, filter_text, max, wait_ms) in (0u8..4, "\\PC{0,12}", any::<u32>(), any::<u64>()),
    ) {
        // Proves: an Append with any expected version and events, a
        // ReadAll with any filter, and StreamSlice / AllSlice responses of
        // any recorded events (any versions, positions, negative times)
        // decode to the same values.
        let expected = match expected {
            0 => ExpectedVersion::Any,
            1 => ExpectedVersion::NoStream,
            2 => ExpectedVersion::Exists,
            _ => ExpectedVersion::Exact(version),
        };
        let filter = match filter_tag {
            0 => AllFilter::All,
            1 => AllFilter::Category(filter_text),
            2 => AllFilter::EventType(filter_text),
            _ => AllFilter::StreamPrefix(filter_text),
        };
        let recorded: Vec<RecordedEvent> = events
            .iter()
            .enumerate()
            .map(|(i, event)| RecordedEvent {
                stream: stream.clone(),
                version: version.wrapping_add(i as u64),
                position: position.wrapping_add(i as u64),
                timestamp_ms: ts,
                event: event.clone(),
            })
            .collect();
        let messages: Vec<Message> = vec![
            Request::Append { stream: stream.clone(), expected, events }.into(),
            Request::ReadAll { from: position, filter, max, wait_ms }.into(),
            Response::StreamSlice(StreamSlice { events: recorded.clone(), last_version: last, next }).into(),
            Response::AllSlice(AllSlice { events: recorded, next: position, head }).into(),
        ];
        for message in messages {
            let frame = Frame::new(7, message);
            let bytes = bytes_of(&frame);
            prop_assert_eq!(decode_whole(&bytes), frame);
        }
    }
}
