//! A list response larger than one frame continues over several, and the
//! receiver puts it back together.

mod support;

use bytes::Bytes;
use eddy_bus::{AllSlice, Offset, ReadBatch, StreamSlice, TopicInfo};
use eddy_proto::{
    Decoded, FRAME_BYTES_MIN, LIST_ITEMS_MAX, Message, ProtoError, Response, decode_frame,
    encode_response,
};
use support::*;

/// Decodes every frame in `buf`, checking each against `limit`.
fn frames_in(buf: &[u8], limit: u32) -> Vec<eddy_proto::Frame> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match decode_frame(&buf[at..], limit).expect("valid frame") {
            Decoded::Frame { frame, consumed } => {
                out.push(frame);
                at += consumed;
            }
            Decoded::Incomplete { needed } => panic!("{needed} bytes missing"),
        }
    }
    out
}

/// Puts a continued response back together, checking the MORE flags.
fn reassemble(frames: Vec<eddy_proto::Frame>) -> Response {
    let last = frames.len() - 1;
    let mut whole: Option<Response> = None;
    for (i, f) in frames.into_iter().enumerate() {
        assert_eq!(f.more, i < last, "MORE on all but the last frame");
        assert_eq!(f.request_id, 77);
        let Message::Response(r) = f.message else {
            panic!("a response")
        };
        match &mut whole {
            None => whole = Some(r),
            Some(w) => w.absorb(r).expect("same kind"),
        }
    }
    whole.expect("at least one frame")
}

fn big_deliveries(n: u64, data_bytes: usize) -> Vec<eddy_bus::Delivery> {
    (0..n)
        .map(|i| {
            let mut d = delivery(i);
            d.event.event.data = Bytes::from(vec![i as u8; data_bytes]);
            d
        })
        .collect()
}

#[test]
fn a_large_fetch_continues_over_frames_within_the_limit() {
    // Proves: deliveries too large for one frame are written as several
    // frames, each within `max_frame_bytes`, MORE on all but the last, and
    // absorbing them gives back the original response.
    let limit = FRAME_BYTES_MIN;
    let response = Response::Deliveries(big_deliveries(40, 5000));
    let mut buf = Vec::new();
    let n = encode_response(77, &response, limit, &mut buf).unwrap();
    assert!(n >= 3, "{n} frames");
    let frames = frames_in(&buf, limit);
    assert_eq!(frames.len(), n);
    assert_eq!(reassemble(frames), response);
}

#[test]
fn a_read_batch_keeps_its_next_offset() {
    // Proves: a split ReadBatch concatenates its events and ends with the
    // batch's `next_offset`.
    let events = (0..30)
        .map(|i| {
            let mut e = stored(i);
            e.event.data = Bytes::from(vec![7; 6000]);
            e
        })
        .collect();
    let response = Response::ReadBatch(ReadBatch {
        events,
        next_offset: Offset(30),
    });
    let mut buf = Vec::new();
    let n = encode_response(77, &response, FRAME_BYTES_MIN, &mut buf).unwrap();
    assert!(n > 1);
    assert_eq!(reassemble(frames_in(&buf, FRAME_BYTES_MIN)), response);
}

#[test]
fn store_slices_keep_their_fields_after_the_events() {
    // Proves: a StreamSlice (backward, so versions descend) and an
    // AllSlice too large for one frame continue over frames within the
    // limit, keep their events in order, and end with the slice's own
    // `last_version` / `next` / `head`.
    let events: Vec<_> = (0..30)
        .rev()
        .map(|v| {
            let mut e = recorded(v);
            e.event.data = Bytes::from(vec![v as u8; 6000]);
            e
        })
        .collect();
    for response in [
        Response::StreamSlice(StreamSlice {
            events: events.clone(),
            last_version: Some(29),
            next: None,
        }),
        Response::AllSlice(AllSlice {
            events,
            next: 5000,
            head: 7000,
        }),
    ] {
        let mut buf = Vec::new();
        let n = encode_response(77, &response, FRAME_BYTES_MIN, &mut buf).unwrap();
        assert!(n > 1, "{n} frames");
        assert_eq!(reassemble(frames_in(&buf, FRAME_BYTES_MIN)), response);
    }
}

#[test]
fn too_many_items_split_by_count() {
    // Proves: a list response over `LIST_ITEMS_MAX` items splits by count
    // even when its bytes would fit, and a small response stays one frame.
    let topics: Vec<TopicInfo> = (0..LIST_ITEMS_MAX + 5)
        .map(|i| TopicInfo {
            name: format!("t{i}"),
            partitions: vec![],
            ..topic_info()
        })
        .collect();
    let response = Response::Topics(topics);
    let mut buf = Vec::new();
    assert_eq!(
        encode_response(77, &response, eddy_proto::FRAME_BYTES_DEFAULT, &mut buf).unwrap(),
        2
    );
    assert_eq!(
        reassemble(frames_in(&buf, eddy_proto::FRAME_BYTES_DEFAULT)),
        response
    );
    let mut one = Vec::new();
    assert_eq!(
        encode_response(77, &Response::Pong, 1 << 20, &mut one),
        Ok(1)
    );
}

#[test]
fn pushed_deliveries_split_into_independent_frames() {
    // Proves: a `Deliver` too large for one frame becomes several
    // `Deliver` frames without MORE (each stands alone on the stream).
    let all = big_deliveries(30, 5000);
    let mut buf = Vec::new();
    let n = encode_response(
        77,
        &Response::Deliver(all.clone()),
        FRAME_BYTES_MIN,
        &mut buf,
    )
    .unwrap();
    assert!(n > 1);
    let mut got = Vec::new();
    for f in frames_in(&buf, FRAME_BYTES_MIN) {
        assert!(!f.more);
        match f.message {
            Message::Response(Response::Deliver(ds)) => got.extend(ds),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, all);
}

#[test]
fn what_cannot_be_split_is_refused_and_nothing_is_written() {
    // Proves: an item too large for any frame, or an oversized response
    // that is not a list, fails with FrameTooLarge and leaves the buffer
    // as it was; absorbing a different kind is refused.
    let mut buf = vec![1, 2, 3];
    let huge = Response::Deliveries(big_deliveries(2, FRAME_BYTES_MIN as usize));
    assert!(matches!(
        encode_response(77, &huge, FRAME_BYTES_MIN, &mut buf),
        Err(ProtoError::FrameTooLarge { .. })
    ));
    let mut dl = dead_letter();
    dl.event.event.data = Bytes::from(vec![0; FRAME_BYTES_MIN as usize]);
    assert!(matches!(
        encode_response(
            77,
            &Response::DeadLetterShown(Box::new(dl)),
            FRAME_BYTES_MIN,
            &mut buf
        ),
        Err(ProtoError::FrameTooLarge { .. })
    ));
    assert_eq!(buf, [1, 2, 3]);
    let mut topics = Response::Topics(vec![]);
    assert!(topics.absorb(Response::Subscriptions(vec![])).is_err());
    assert!(Response::Pong.absorb(Response::Pong).is_err());
}
