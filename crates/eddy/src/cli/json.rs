//! The JSON printed by `--json`: stable shapes for scripts.
//!
//! An event is its CloudEvents JSON form — `specversion` "1.0", `id`,
//! `source`, `type`, and when set `subject`, `time` (RFC 3339),
//! `datacontenttype`, `dataschema`; `data` as JSON when the content type is
//! JSON (`application/json`, `text/json`, `*+json`) and the bytes parse,
//! otherwise `data_base64`; the extensions `key`, `correlationid`,
//! `causationid`, `traceparent`; and `headers` as an object when there are
//! any — plus, for a stored event, `topic`, `partition`, `offset` and
//! `timestamp` (ms since the epoch). The HTTP API uses the same shape.
//!
//! A delivery is `{"ack_id", "attempt", "lease_deadline_ms", "event"}`.
//!
//! An event of the event store is the event plus `stream`, `version`,
//! `position` and `timestamp`; a stream's settings are `{"max_age_ms",
//! "max_count", "truncate_before"}` (each `null` if unset) — the HTTP
//! API's shapes.

use eddy_bus::{
    AppendResult, Backoff, DeadLetter, Delivery, DeliveryMode, Event, PartitionInfo, Published,
    RecordedEvent, RetryPolicy, StartAt, StoredEvent, StreamInfo, StreamMetadata,
    SubscriptionConfig, SubscriptionInfo, SubscriptionStats, TopicInfo, TopicStats,
};
use serde_json::{Map, Value, json};

use crate::utc;

/// Whether a content type is JSON.
pub fn is_json_content_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// An event's CloudEvents JSON attributes, data and extensions.
pub fn event_fields(e: &Event) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("specversion".into(), "1.0".into());
    m.insert("id".into(), e.id.clone().into());
    m.insert("source".into(), e.source.clone().into());
    m.insert("type".into(), e.ty.clone().into());
    let mut opt = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            m.insert(name.into(), v.clone().into());
        }
    };
    opt("subject", &e.subject);
    opt("time", &e.time_ms.map(utc::format_ms));
    opt("datacontenttype", &e.data_content_type);
    opt("dataschema", &e.data_schema);
    opt("key", &e.key);
    opt("correlationid", &e.correlation_id);
    opt("causationid", &e.causation_id);
    opt("traceparent", &e.traceparent);
    let as_json = e
        .data_content_type
        .as_deref()
        .filter(|ct| is_json_content_type(ct))
        .and_then(|_| serde_json::from_slice::<Value>(&e.data).ok());
    match as_json {
        Some(data) => m.insert("data".into(), data),
        None => m.insert("data_base64".into(), base64(&e.data).into()),
    };
    if !e.headers.is_empty() {
        // A repeated header name keeps its last value.
        let headers: Map<String, Value> = e
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), Value::from(v.clone())))
            .collect();
        m.insert("headers".into(), headers.into());
    }
    m
}

/// A stored event: the event plus where and when it was stored.
pub fn stored_event(s: &StoredEvent) -> Value {
    let mut m = event_fields(&s.event);
    m.insert("topic".into(), s.topic.clone().into());
    m.insert("partition".into(), s.partition.0.into());
    m.insert("offset".into(), s.offset.0.into());
    m.insert("timestamp".into(), s.timestamp_ms.into());
    m.into()
}

/// A delivery.
pub fn delivery(d: &Delivery) -> Value {
    json!({
        "ack_id": d.ack_id.to_string(),
        "attempt": d.attempt,
        "lease_deadline_ms": d.lease_deadline_ms,
        "event": stored_event(&d.event),
    })
}

/// Where a publish stored an event.
pub fn published(topic: &str, p: &Published) -> Value {
    json!({
        "topic": topic,
        "partition": p.partition.0,
        "offset": p.offset.0,
        "duplicate": p.duplicate,
    })
}

/// A partition's range.
pub fn partition_info(p: &PartitionInfo) -> Value {
    json!({
        "partition": p.partition.0,
        "first_offset": p.first_offset.0,
        "next_offset": p.next_offset.0,
        "events": p.next_offset.0.saturating_sub(p.first_offset.0),
        "size_bytes": p.size_bytes,
    })
}

/// A topic, its settings and partitions.
pub fn topic_info(t: &TopicInfo) -> Value {
    let r = &t.config.retention;
    json!({
        "name": t.name,
        "config": {
            "partitions": t.config.partitions,
            "retention": {
                "age_max_ms": r.age_max_ms,
                "bytes_max": r.bytes_max,
                "events_max": r.events_max,
            },
            "dedup": {
                "age_ms": t.config.dedup.age_ms,
                "entries_max": t.config.dedup.entries_max,
            },
        },
        "partitions": t.partitions.iter().map(partition_info).collect::<Vec<_>>(),
    })
}

/// Where a subscription starts: `"earliest"`, `"latest"`, `{"offset": n}`
/// or `{"time_ms": t}`.
pub fn start_at(s: StartAt) -> Value {
    match s {
        StartAt::Earliest => "earliest".into(),
        StartAt::Latest => "latest".into(),
        StartAt::Offset(o) => json!({ "offset": o.0 }),
        StartAt::Time(t) => json!({ "time_ms": t }),
    }
}

/// The delivery mode's name.
pub fn mode_name(m: DeliveryMode) -> &'static str {
    match m {
        DeliveryMode::Shared => "shared",
        DeliveryMode::Ordered => "ordered",
    }
}

/// A backoff: `{"kind": "fixed", "delay_ms"}`, `{"kind": "exponential",
/// "initial_ms", "factor"}`, `{"kind": "quadratic", "base_ms"}` or
/// `{"kind": "list", "delays_ms"}`.
pub fn backoff(b: &Backoff) -> Value {
    match b {
        Backoff::Fixed { delay_ms } => json!({ "kind": "fixed", "delay_ms": delay_ms }),
        Backoff::Exponential { initial_ms, factor } => {
            json!({ "kind": "exponential", "initial_ms": initial_ms, "factor": factor })
        }
        Backoff::Quadratic { base_ms } => json!({ "kind": "quadratic", "base_ms": base_ms }),
        Backoff::List { delays_ms } => json!({ "kind": "list", "delays_ms": delays_ms }),
    }
}

/// A retry policy.
pub fn retry(r: &RetryPolicy) -> Value {
    json!({
        "max_deliveries": r.max_deliveries,
        "backoff": backoff(&r.backoff),
        "cap_ms": r.cap_ms,
        "jitter_pct": r.jitter_pct,
    })
}

/// A subscription's settings.
pub fn subscription_config(c: &SubscriptionConfig) -> Value {
    json!({
        "filter": c.filter,
        "start": start_at(c.start),
        "mode": mode_name(c.mode),
        "ack_wait_ms": c.ack_wait_ms,
        "retry": retry(&c.retry),
        "max_ack_pending": c.max_ack_pending,
    })
}

/// A subscription.
pub fn subscription_info(s: &SubscriptionInfo) -> Value {
    json!({
        "name": s.name,
        "config": subscription_config(&s.config),
        "topics": s.topics,
        "dead_letter_topic": s.dead_letter_topic,
    })
}

/// A topic's counters.
pub fn topic_stats(s: &TopicStats) -> Value {
    json!({
        "name": s.name,
        "published": s.published,
        "duplicates": s.duplicates,
        "events": s.events,
        "size_bytes": s.size_bytes,
    })
}

/// A subscription's counters.
pub fn subscription_stats(s: &SubscriptionStats) -> Value {
    json!({
        "name": s.name,
        "delivered": s.delivered,
        "redelivered": s.redelivered,
        "acked": s.acked,
        "dead_lettered": s.dead_lettered,
        "lag": s.lag,
        "in_flight": s.in_flight,
        "waiting": s.waiting,
        "oldest_unacked_age_ms": s.oldest_unacked_age_ms,
        "dead_letters": s.dead_letters,
    })
}

/// A dead letter.
pub fn dead_letter(d: &DeadLetter) -> Value {
    json!({
        "id": d.id,
        "subscription": d.subscription,
        "reason": d.reason.as_str(),
        "attempts": d.attempts,
        "last_error": d.last_error,
        "dead_at_ms": d.dead_at_ms,
        "redrives": d.redrives,
        "event": stored_event(&d.event),
    })
}

/// An event of the event store: the event plus its stream, version,
/// position in `$all` and append time.
pub fn recorded_event(r: &RecordedEvent) -> Value {
    let mut m = event_fields(&r.event);
    m.insert("stream".into(), r.stream.clone().into());
    m.insert("version".into(), r.version.into());
    m.insert("position".into(), r.position.into());
    m.insert("timestamp".into(), r.timestamp_ms.into());
    m.into()
}

/// Where an append put its events.
pub fn append_result(stream: &str, r: &AppendResult) -> Value {
    json!({
        "stream": stream,
        "first_version": r.first_version,
        "last_version": r.last_version,
        "position": r.position,
        "duplicate": r.duplicate,
    })
}

/// A stream's settings.
pub fn stream_metadata(m: &StreamMetadata) -> Value {
    json!({
        "max_age_ms": m.max_age_ms,
        "max_count": m.max_count,
        "truncate_before": m.truncate_before,
    })
}

/// What the store knows of a stream.
pub fn stream_info(i: &StreamInfo) -> Value {
    json!({
        "stream": i.stream,
        "last_version": i.last_version,
        "metadata": stream_metadata(&i.metadata),
        "deleted": i.deleted,
    })
}

/// Standard base64 with padding (RFC 4648 §4), as `data_base64` holds.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_bus::{Offset, Partition};

    #[test]
    fn event_shape() {
        // Proves JSON data is inlined only for a JSON content type that
        // parses, other data goes to data_base64, optional attributes are
        // left out when unset, and headers become an object.
        let mut e = Event::new("OrderPlaced", r#"{"n":1}"#)
            .with_id("e-1")
            .with_key("k")
            .with_header("tenant", "acme");
        e.data_content_type = Some("application/json; charset=utf-8".into());
        let s = StoredEvent {
            topic: "orders".into(),
            partition: Partition(2),
            offset: Offset(7),
            timestamp_ms: 1000,
            event: e.clone(),
        };
        let v = stored_event(&s);
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["data"], json!({ "n": 1 }));
        assert_eq!(v["key"], "k");
        assert_eq!(v["headers"], json!({ "tenant": "acme" }));
        assert_eq!(v["partition"], 2);
        assert_eq!(v["offset"], 7);
        assert_eq!(v["timestamp"], 1000);
        assert!(v.get("subject").is_none() && v.get("data_base64").is_none());
        e.data_content_type = Some("text/plain".into());
        let v = Value::from(event_fields(&e));
        assert_eq!(v["data_base64"], base64(br#"{"n":1}"#));
        assert!(v.get("data").is_none());
        e.data_content_type = Some("application/cloudevents+json".into());
        e.data = "not json".into();
        assert_eq!(Value::from(event_fields(&e))["data_base64"], "bm90IGpzb24=");
    }
}
