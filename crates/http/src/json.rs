//! The JSON shapes of the API and their conversions to and from the bus's
//! types.
//!
//! An event is its CloudEvents JSON form — `specversion` "1.0", `id`,
//! `source`, `type`, and when set `subject`, `time` (RFC 3339),
//! `datacontenttype`, `dataschema`; `data` as JSON when the content type is
//! JSON and the bytes parse, otherwise `data_base64`; the extensions `key`,
//! `correlationid`, `causationid`, `traceparent`; and `headers` as an
//! object when there are any. A stored event adds `topic`, `partition`,
//! `offset` and `timestamp` (ms since the epoch); an event of the event
//! store adds `stream`, `version`, `position` and `timestamp`. The CLI's
//! `--json` output uses the same shapes, so a read event can be published
//! (or appended) again as is.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use eddy_bus::{AllSlice, AppendResult, RecordedEvent, StreamInfo, StreamMetadata, StreamSlice};
use eddy_bus::{
    Backoff, DeadLetter, DedupWindow, Delivery, DeliveryMode, Event, PartitionInfo, Published,
    Retention, RetryPolicy, StartAt, StoredEvent, SubscriptionConfig, SubscriptionInfo,
    SubscriptionStats, TopicConfig, TopicInfo, TopicStats,
};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::problem::Problem;
use crate::state::is_json_media_type;
use crate::time;

/// The source given to a plain JSON event that names none.
pub const DEFAULT_SOURCE: &str = "/eddy/http";

// ---------------------------------------------------------------- events

/// An event's extension attributes beyond Eddy's own, as a JSON object of
/// strings. A name given twice keeps its last value on output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if !self.0[i + 1..].iter().any(|(later, _)| later == name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// An event to publish, as plain JSON (`Content-Type: application/json`).
/// Only `type` is required: a missing `id` is generated, a missing
/// `source` is `/eddy/http`. `data` is any JSON value (stored as its JSON
/// text, `datacontenttype` `application/json` unless given); `data_base64`
/// carries bytes instead. `time` is RFC 3339 text or ms since the epoch.
/// The fields of a stored event (`topic`, `partition`, `offset`,
/// `timestamp`) and of a recorded one (`stream`, `version`, `position`)
/// are accepted and ignored; any other field is refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EventInput {
    /// CloudEvents version; "1.0" if given.
    pub specversion: Option<String>,
    /// Unique per producer: a second publish of the same id within the
    /// topic's dedup window is a duplicate.
    pub id: Option<String>,
    /// Who produced it (a URI reference).
    pub source: Option<String>,
    /// What happened: `OrderPlaced`.
    #[serde(rename = "type")]
    pub ty: String,
    /// What it is about, within the source.
    pub subject: Option<String>,
    /// When it happened: RFC 3339 text, or ms since the epoch.
    #[schema(value_type = Option<String>)]
    pub time: Option<serde_json::Value>,
    /// The media type of the data.
    pub datacontenttype: Option<String>,
    /// The schema the data follows.
    pub dataschema: Option<String>,
    /// The payload, as JSON.
    #[schema(value_type = Option<Value>)]
    pub data: Option<serde_json::Value>,
    /// The payload, as base64 bytes (instead of `data`).
    pub data_base64: Option<String>,
    /// Ordering and partition key.
    pub key: Option<String>,
    /// The flow it belongs to.
    pub correlationid: Option<String>,
    /// The event that caused it.
    pub causationid: Option<String>,
    /// W3C trace context.
    pub traceparent: Option<String>,
    /// Further extension attributes: names of 1 to 20 lowercase letters or
    /// digits.
    pub headers: Option<BTreeMap<String, String>>,
}

/// The body of a plain JSON publish: one event, or an array of them (a
/// batch, published all or none).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PublishBody {
    /// One event.
    One(Box<EventInput>),
    /// A batch.
    Batch(Vec<EventInput>),
}

/// An event in its CloudEvents JSON form (what a stored or recorded event
/// adds its place to).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventJson {
    /// Always "1.0".
    pub specversion: String,
    /// The event id.
    pub id: String,
    /// Who produced it.
    pub source: String,
    /// What happened.
    #[serde(rename = "type")]
    pub ty: String,
    /// What it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When it happened (RFC 3339, UTC, ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The media type of the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The schema of the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// The data, when its content type is JSON and it parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub data: Option<Box<RawValue>>,
    /// The data as base64 otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Ordering and partition key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The flow it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// The event that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    /// W3C trace context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Further extension attributes.
    #[serde(skip_serializing_if = "Headers::is_empty")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub headers: Headers,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> EventJson {
        let data = e
            .data_content_type
            .as_deref()
            .filter(|ct| is_json_media_type(ct))
            .and_then(|_| serde_json::from_slice::<&RawValue>(&e.data).ok())
            .map(|raw| raw.to_owned());
        let data_base64 = data.is_none().then(|| BASE64.encode(&e.data));
        EventJson {
            specversion: "1.0".into(),
            id: e.id.clone(),
            source: e.source.clone(),
            ty: e.ty.clone(),
            subject: e.subject.clone(),
            time: e.time_ms.map(time::format_ms),
            datacontenttype: e.data_content_type.clone(),
            dataschema: e.data_schema.clone(),
            data,
            data_base64,
            key: e.key.clone(),
            correlationid: e.correlation_id.clone(),
            causationid: e.causation_id.clone(),
            traceparent: e.traceparent.clone(),
            headers: Headers(e.headers.clone()),
        }
    }
}

/// An event as stored: its CloudEvents JSON plus where and when the bus
/// stored it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredEventJson {
    /// The event.
    #[serde(flatten)]
    pub event: EventJson,
    /// The topic it was published to.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// When the bus appended it (ms since the epoch).
    pub timestamp: i64,
}

impl From<&StoredEvent> for StoredEventJson {
    fn from(s: &StoredEvent) -> StoredEventJson {
        StoredEventJson {
            event: EventJson::from(&s.event),
            topic: s.topic.clone(),
            partition: s.partition.0,
            offset: s.offset.0,
            timestamp: s.timestamp_ms,
        }
    }
}

/// How an event object is read: plain JSON or CloudEvents structured mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventFormat {
    /// `application/json`: only `type` required, unknown fields refused.
    Plain,
    /// CloudEvents JSON: `specversion`, `id`, `source`, `type` required;
    /// unknown attributes are extensions (headers).
    Structured,
}

/// A JSON object with each member's JSON text kept as sent.
pub(crate) type RawObject = BTreeMap<String, Box<RawValue>>;

/// Attributes every event object may carry, whatever the format.
const STORED_FIELDS: [&str; 4] = ["topic", "partition", "offset", "timestamp"];
/// Fields of an event store's recorded event that a plain JSON event may
/// carry (a CloudEvent's extension attributes of these names are kept).
const RECORDED_FIELDS: [&str; 3] = ["stream", "version", "position"];

/// Reads one event object.
pub(crate) fn event_from_object(mut obj: RawObject, format: EventFormat) -> Result<Event, Problem> {
    let structured = format == EventFormat::Structured;
    let mut take = |name: &str| -> Result<Option<String>, Problem> {
        match obj.remove(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<Option<String>>(raw.get())
                .map_err(|_| Problem::invalid(format!("the attribute `{name}` must be a string"))),
        }
    };
    match take("specversion")?.as_deref() {
        Some("1.0") => {}
        None if !structured => {}
        None => return Err(Problem::invalid("a CloudEvent needs `specversion` \"1.0\"")),
        Some(other) => {
            return Err(Problem::invalid(format!(
                "`specversion` {other:?} is not supported; use \"1.0\""
            )));
        }
    }
    let required = |value: Option<String>, name: &str| -> Result<String, Problem> {
        match value {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(Problem::invalid(format!(
                "a CloudEvent needs a non-empty `{name}`"
            ))),
        }
    };
    let id = take("id")?;
    let source = take("source")?;
    let ty = take("type")?;
    let (id, source) = if structured {
        (required(id, "id")?, required(source, "source")?)
    } else {
        (
            id.unwrap_or_default(),
            source.unwrap_or_else(|| DEFAULT_SOURCE.to_string()),
        )
    };
    let ty = required(ty, "type")?;
    let mut event = Event {
        id,
        source,
        ty,
        subject: take("subject")?,
        data_content_type: take("datacontenttype")?,
        data_schema: take("dataschema")?,
        key: take("key")?,
        correlation_id: take("correlationid")?,
        causation_id: take("causationid")?,
        traceparent: take("traceparent")?,
        ..Event::default()
    };
    let data_base64 = take("data_base64")?;
    event.time_ms = match obj.remove("time") {
        None => None,
        Some(raw) => time_value(&raw, structured)?,
    };
    let data = obj.remove("data");
    event.data = data_from_json(&mut event.data_content_type, data, data_base64)?;
    if let Some(raw) = obj.remove("headers") {
        let headers: Option<Vec<(String, String)>> =
            serde_json::from_str::<Option<BTreeMap<String, String>>>(raw.get())
                .map(|h| h.map(|h| h.into_iter().collect()))
                .map_err(|_| Problem::invalid("`headers` must be an object of strings"))?;
        event.headers.extend(headers.unwrap_or_default());
    }
    for field in STORED_FIELDS {
        obj.remove(field);
    }
    if !structured {
        for field in RECORDED_FIELDS {
            obj.remove(field);
        }
    }
    for (name, raw) in obj {
        if !structured {
            return Err(Problem::invalid(format!(
                "unknown event field `{name}` (extension attributes go in `headers`)"
            )));
        }
        if let Some(value) = extension_value(&name, &raw)? {
            event.headers.push((name, value));
        }
    }
    Ok(event)
}

/// A `time` attribute: RFC 3339 text, or (plain JSON only) ms since the
/// epoch.
fn time_value(raw: &RawValue, structured: bool) -> Result<Option<i64>, Problem> {
    let value: serde_json::Value = serde_json::from_str(raw.get())
        .map_err(|e| Problem::invalid(format!("bad `time`: {e}")))?;
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(text) => time::parse_rfc3339(&text)
            .map(Some)
            .map_err(|e| Problem::invalid(format!("bad `time`: {e}"))),
        serde_json::Value::Number(n) if !structured => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| Problem::invalid("`time` in ms must be an integer")),
        _ => Err(Problem::invalid(
            "`time` must be RFC 3339 text (or, in plain JSON, ms since the epoch)",
        )),
    }
}

/// A CloudEvents extension attribute's value as text: strings as they are,
/// numbers and booleans as their JSON text; null means absent.
fn extension_value(name: &str, raw: &RawValue) -> Result<Option<String>, Problem> {
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(serde_json::Value::String(s)) => Ok(Some(s)),
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Ok(Some(v.to_string()))
        }
        _ => Err(Problem::invalid(format!(
            "the extension attribute `{name}` must be a string, number or boolean"
        ))),
    }
}

/// The data of an event given as `data` (JSON) or `data_base64`.
///
/// JSON data is stored as the JSON text sent, with `datacontenttype`
/// `application/json` if none was given; under a non-JSON content type a
/// JSON string is the data itself (`"hello"` under `text/plain` is
/// `hello`).
pub(crate) fn data_from_json(
    content_type: &mut Option<String>,
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
) -> Result<Bytes, Problem> {
    match (data, data_base64) {
        (Some(_), Some(_)) => Err(Problem::invalid(
            "an event carries `data` or `data_base64`, not both",
        )),
        (None, None) => Ok(Bytes::new()),
        (None, Some(b64)) => BASE64
            .decode(b64.trim())
            .map(Bytes::from)
            .map_err(|e| Problem::invalid(format!("`data_base64` is not base64: {e}"))),
        (Some(raw), None) => {
            let text = raw.get().trim();
            match content_type.as_deref() {
                None => {
                    *content_type = Some("application/json".into());
                    Ok(Bytes::copy_from_slice(text.as_bytes()))
                }
                Some(ct) if is_json_media_type(ct) => Ok(Bytes::copy_from_slice(text.as_bytes())),
                Some(_) => match serde_json::from_str::<String>(text) {
                    Ok(s) => Ok(Bytes::from(s)),
                    Err(_) => Ok(Bytes::copy_from_slice(text.as_bytes())),
                },
            }
        }
    }
}

/// Where a publish stored one event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublishedJson {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// `true` if its id was published before within the dedup window:
    /// nothing new was stored, and this is where the first one is.
    pub duplicate: bool,
}

impl From<&Published> for PublishedJson {
    fn from(p: &Published) -> PublishedJson {
        PublishedJson {
            partition: p.partition.0,
            offset: p.offset.0,
            duplicate: p.duplicate,
        }
    }
}

/// The answer to a publish: one result per event, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublishResponse {
    /// Where each event is stored.
    pub results: Vec<PublishedJson>,
}

/// Events read from a partition.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadResponse {
    /// The events, in offset order.
    pub events: Vec<StoredEventJson>,
    /// The offset to read from next.
    pub next_offset: u64,
}

// ---------------------------------------------------------- event store

/// An event as the event store holds it: its CloudEvents JSON plus its
/// stream, version, `$all` position and append time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordedEventJson {
    /// The event.
    #[serde(flatten)]
    pub event: EventJson,
    /// Its stream.
    pub stream: String,
    /// Its number within the stream, from 0.
    pub version: u64,
    /// Its position in `$all`.
    pub position: u64,
    /// When the store appended it (ms since the epoch).
    pub timestamp: i64,
}

impl From<&RecordedEvent> for RecordedEventJson {
    fn from(r: &RecordedEvent) -> RecordedEventJson {
        RecordedEventJson {
            event: EventJson::from(&r.event),
            stream: r.stream.clone(),
            version: r.version,
            position: r.position,
            timestamp: r.timestamp_ms,
        }
    }
}

/// Where an append put its events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppendResponse {
    /// The version of its first event.
    pub first_version: u64,
    /// The version of its last event: the expected version of the next
    /// append.
    pub last_version: u64,
    /// The `$all` position of its last event.
    pub position: u64,
    /// `true` if these events (by id) were appended before at these
    /// versions (a retried append): nothing new was stored.
    pub duplicate: bool,
}

impl From<&AppendResult> for AppendResponse {
    fn from(r: &AppendResult) -> AppendResponse {
        AppendResponse {
            first_version: r.first_version,
            last_version: r.last_version,
            position: r.position,
            duplicate: r.duplicate,
        }
    }
}

/// Part of a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamSliceJson {
    /// The events, in the read's direction.
    pub events: Vec<RecordedEventJson>,
    /// The stream's last version; `null` if it does not exist.
    pub last_version: Option<u64>,
    /// The version to read from next in the same direction; `null` once
    /// the read reached the end (or the start, backward).
    pub next: Option<u64>,
}

impl From<&StreamSlice> for StreamSliceJson {
    fn from(s: &StreamSlice) -> StreamSliceJson {
        StreamSliceJson {
            events: s.events.iter().map(RecordedEventJson::from).collect(),
            last_version: s.last_version,
            next: s.next,
        }
    }
}

/// Part of `$all`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AllSliceJson {
    /// The events that passed the filter, by position.
    pub events: Vec<RecordedEventJson>,
    /// The position to read from next: past everything this read looked
    /// at.
    pub next: u64,
    /// The position after the last event when the read was made.
    pub head: u64,
}

impl From<&AllSlice> for AllSliceJson {
    fn from(s: &AllSlice) -> AllSliceJson {
        AllSliceJson {
            events: s.events.iter().map(RecordedEventJson::from).collect(),
            next: s.next,
            head: s.head,
        }
    }
}

/// A stream's settings (each `null` or absent: no limit). Events they
/// hide are no longer read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StreamMetadataJson {
    /// Events older than this are no longer read.
    pub max_age_ms: Option<u64>,
    /// Only the last this many events are read.
    pub max_count: Option<u64>,
    /// Events below this version are no longer read.
    pub truncate_before: Option<u64>,
}

impl From<StreamMetadata> for StreamMetadataJson {
    fn from(m: StreamMetadata) -> Self {
        StreamMetadataJson {
            max_age_ms: m.max_age_ms,
            max_count: m.max_count,
            truncate_before: m.truncate_before,
        }
    }
}

impl From<StreamMetadataJson> for StreamMetadata {
    fn from(m: StreamMetadataJson) -> Self {
        StreamMetadata {
            max_age_ms: m.max_age_ms,
            max_count: m.max_count,
            truncate_before: m.truncate_before,
        }
    }
}

/// What the store knows of a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamInfoJson {
    /// Its name.
    pub stream: String,
    /// Its last version; `null` if never written, or deleted.
    pub last_version: Option<u64>,
    /// Its settings.
    pub metadata: StreamMetadataJson,
    /// Whether it was deleted (and not written since).
    pub deleted: bool,
}

impl From<&StreamInfo> for StreamInfoJson {
    fn from(i: &StreamInfo) -> StreamInfoJson {
        StreamInfoJson {
            stream: i.stream.clone(),
            last_version: i.last_version,
            metadata: i.metadata.into(),
            deleted: i.deleted,
        }
    }
}

// ---------------------------------------------------------------- topics

/// How long a topic keeps events; `null` is no limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionJson {
    /// Delete events once they are this old (whole segments).
    pub age_max_ms: Option<u64>,
    /// Keep at most about this many bytes per partition.
    pub bytes_max: Option<u64>,
    /// Keep at most about this many events per partition.
    pub events_max: Option<u64>,
}

impl From<Retention> for RetentionJson {
    fn from(r: Retention) -> Self {
        RetentionJson {
            age_max_ms: r.age_max_ms,
            bytes_max: r.bytes_max,
            events_max: r.events_max,
        }
    }
}

impl From<RetentionJson> for Retention {
    fn from(r: RetentionJson) -> Self {
        Retention {
            age_max_ms: r.age_max_ms,
            bytes_max: r.bytes_max,
            events_max: r.events_max,
        }
    }
}

/// The idempotent-publishing window (defaults: 120,000 ms, 100,000 ids).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DedupJson {
    /// Ids are remembered this long.
    pub age_ms: u64,
    /// At most this many ids are remembered per topic.
    pub entries_max: u32,
}

impl Default for DedupJson {
    fn default() -> Self {
        DedupWindow::default().into()
    }
}

impl From<DedupWindow> for DedupJson {
    fn from(d: DedupWindow) -> Self {
        DedupJson {
            age_ms: d.age_ms,
            entries_max: d.entries_max,
        }
    }
}

/// A topic to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// Its name: dot-separated words (`orders.placed`).
    pub name: String,
    /// Partitions, 1..=1024 (default 1).
    pub partitions: Option<u32>,
    /// Retention (default: keep forever).
    pub retention: Option<RetentionJson>,
    /// Dedup window.
    pub dedup: Option<DedupJson>,
}

impl CreateTopic {
    /// The bus settings it asks for.
    pub fn config(&self) -> TopicConfig {
        let d = self.dedup.clone().unwrap_or_default();
        TopicConfig {
            partitions: self.partitions.unwrap_or(1),
            retention: self.retention.clone().unwrap_or_default().into(),
            dedup: DedupWindow {
                age_ms: d.age_ms,
                entries_max: d.entries_max,
            },
        }
    }
}

/// A topic's settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicConfigJson {
    /// Partitions.
    pub partitions: u32,
    /// Retention.
    pub retention: RetentionJson,
    /// Dedup window.
    pub dedup: DedupJson,
}

/// A partition's range and size.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartitionJson {
    /// The partition.
    pub partition: u32,
    /// The first offset held.
    pub first_offset: u64,
    /// The offset the next event gets.
    pub next_offset: u64,
    /// Events held.
    pub events: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

impl From<&PartitionInfo> for PartitionJson {
    fn from(p: &PartitionInfo) -> Self {
        PartitionJson {
            partition: p.partition.0,
            first_offset: p.first_offset.0,
            next_offset: p.next_offset.0,
            events: p.next_offset.0.saturating_sub(p.first_offset.0),
            size_bytes: p.size_bytes,
        }
    }
}

/// A topic.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicJson {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub config: TopicConfigJson,
    /// Each partition's range.
    pub partitions: Vec<PartitionJson>,
}

impl From<&TopicInfo> for TopicJson {
    fn from(t: &TopicInfo) -> Self {
        TopicJson {
            name: t.name.clone(),
            config: TopicConfigJson {
                partitions: t.config.partitions,
                retention: t.config.retention.into(),
                dedup: t.config.dedup.into(),
            },
            partitions: t.partitions.iter().map(PartitionJson::from).collect(),
        }
    }
}

/// Every topic.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicList {
    /// The topics, by name.
    pub topics: Vec<TopicJson>,
}

/// A topic's counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopicStatsJson {
    /// The topic.
    pub name: String,
    /// Events published since the bus opened (duplicates not counted).
    pub published: u64,
    /// Publishes dropped as duplicates since the bus opened.
    pub duplicates: u64,
    /// Events held.
    pub events: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

impl From<&TopicStats> for TopicStatsJson {
    fn from(s: &TopicStats) -> Self {
        TopicStatsJson {
            name: s.name.clone(),
            published: s.published,
            duplicates: s.duplicates,
            events: s.events,
            size_bytes: s.size_bytes,
        }
    }
}

// --------------------------------------------------------- subscriptions

/// Where a subscription starts (or a seek goes): `"earliest"`, `"latest"`,
/// `{"offset": n}` (in every partition), `{"time_ms": t}` or
/// `{"time": "<RFC 3339>"}` (the first event appended at or after it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartJson {
    /// The first event held.
    Earliest,
    /// After the last event.
    Latest,
    /// This offset in every partition.
    Offset(u64),
    /// The first event appended at or after this time (ms).
    TimeMs(i64),
    /// The first event appended at or after this time (RFC 3339).
    Time(String),
}

impl StartJson {
    /// The bus's value.
    pub fn to_start(&self) -> Result<StartAt, Problem> {
        Ok(match self {
            StartJson::Earliest => StartAt::Earliest,
            StartJson::Latest => StartAt::Latest,
            StartJson::Offset(o) => StartAt::Offset(eddy_bus::Offset(*o)),
            StartJson::TimeMs(t) => StartAt::Time(*t),
            StartJson::Time(text) => {
                StartAt::Time(time::parse_rfc3339(text).map_err(Problem::invalid)?)
            }
        })
    }
}

impl From<StartAt> for StartJson {
    fn from(s: StartAt) -> Self {
        match s {
            StartAt::Earliest => StartJson::Earliest,
            StartAt::Latest => StartJson::Latest,
            StartAt::Offset(o) => StartJson::Offset(o.0),
            StartAt::Time(t) => StartJson::TimeMs(t),
        }
    }
}

/// How a subscription's consumers share its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModeJson {
    /// Any event to any consumer.
    Shared,
    /// At most one event per key in flight: each key in order.
    Ordered,
}

impl From<DeliveryMode> for ModeJson {
    fn from(m: DeliveryMode) -> Self {
        match m {
            DeliveryMode::Ordered => ModeJson::Ordered,
            _ => ModeJson::Shared,
        }
    }
}

impl From<ModeJson> for DeliveryMode {
    fn from(m: ModeJson) -> Self {
        match m {
            ModeJson::Shared => DeliveryMode::Shared,
            ModeJson::Ordered => DeliveryMode::Ordered,
        }
    }
}

/// The wait before each redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackoffJson {
    /// Always `delay_ms`.
    Fixed {
        /// The wait.
        delay_ms: u64,
    },
    /// `initial_ms · factorⁿ⁻¹`.
    Exponential {
        /// The first wait.
        initial_ms: u64,
        /// The growth factor, at least 1.
        factor: u32,
    },
    /// `base_ms · n²`.
    Quadratic {
        /// The first wait.
        base_ms: u64,
    },
    /// The n-th entry; the last one repeats.
    List {
        /// The waits (1 to 100).
        delays_ms: Vec<u64>,
    },
}

impl From<&Backoff> for BackoffJson {
    fn from(b: &Backoff) -> Self {
        match b {
            Backoff::Fixed { delay_ms } => BackoffJson::Fixed {
                delay_ms: *delay_ms,
            },
            Backoff::Exponential { initial_ms, factor } => BackoffJson::Exponential {
                initial_ms: *initial_ms,
                factor: *factor,
            },
            Backoff::Quadratic { base_ms } => BackoffJson::Quadratic { base_ms: *base_ms },
            Backoff::List { delays_ms } => BackoffJson::List {
                delays_ms: delays_ms.clone(),
            },
        }
    }
}

impl From<BackoffJson> for Backoff {
    fn from(b: BackoffJson) -> Self {
        match b {
            BackoffJson::Fixed { delay_ms } => Backoff::Fixed { delay_ms },
            BackoffJson::Exponential { initial_ms, factor } => {
                Backoff::Exponential { initial_ms, factor }
            }
            BackoffJson::Quadratic { base_ms } => Backoff::Quadratic { base_ms },
            BackoffJson::List { delays_ms } => Backoff::List { delays_ms },
        }
    }
}

/// Retries and dead-lettering (defaults: 5 deliveries, quadratic backoff
/// from 1 s, no cap, no jitter).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryJson {
    /// Deliveries an event gets before it is dead-lettered.
    pub max_deliveries: u32,
    /// The waits between deliveries.
    pub backoff: BackoffJson,
    /// No wait is longer than this.
    pub cap_ms: Option<u64>,
    /// Spread each wait by up to ± this percentage.
    pub jitter_pct: u8,
}

impl Default for RetryJson {
    fn default() -> Self {
        (&RetryPolicy::default()).into()
    }
}

impl From<&RetryPolicy> for RetryJson {
    fn from(r: &RetryPolicy) -> Self {
        RetryJson {
            max_deliveries: r.max_deliveries,
            backoff: (&r.backoff).into(),
            cap_ms: r.cap_ms,
            jitter_pct: r.jitter_pct,
        }
    }
}

impl From<RetryJson> for RetryPolicy {
    fn from(r: RetryJson) -> Self {
        RetryPolicy {
            max_deliveries: r.max_deliveries,
            backoff: r.backoff.into(),
            cap_ms: r.cap_ms,
            jitter_pct: r.jitter_pct,
        }
    }
}

/// A subscription to create. Unset settings take the bus's defaults:
/// start `latest`, mode `shared`, a 30 s lease, the default retry policy,
/// 10,000 pending events.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// Its name.
    pub name: String,
    /// A topic name or pattern (`orders.*`, `orders.>`).
    pub filter: String,
    /// Where it starts.
    pub start: Option<StartJson>,
    /// Shared or per-key ordered.
    pub mode: Option<ModeJson>,
    /// The lease: how long a consumer has to settle a delivery.
    pub ack_wait_ms: Option<u64>,
    /// Retries and dead-lettering.
    pub retry: Option<RetryJson>,
    /// Most events pending at once.
    pub max_ack_pending: Option<u32>,
}

impl CreateSubscription {
    /// The bus settings it asks for.
    pub fn config(&self) -> Result<SubscriptionConfig, Problem> {
        let mut c = SubscriptionConfig::new(self.filter.clone());
        if let Some(start) = &self.start {
            c.start = start.to_start()?;
        }
        if let Some(mode) = self.mode {
            c.mode = mode.into();
        }
        if let Some(ms) = self.ack_wait_ms {
            c.ack_wait_ms = ms;
        }
        if let Some(retry) = &self.retry {
            c.retry = retry.clone().into();
        }
        if let Some(n) = self.max_ack_pending {
            c.max_ack_pending = n;
        }
        Ok(c)
    }
}

/// A subscription's settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionConfigJson {
    /// Topic name or pattern.
    pub filter: String,
    /// Where it started.
    pub start: StartJson,
    /// Shared or ordered.
    pub mode: ModeJson,
    /// The lease.
    pub ack_wait_ms: u64,
    /// Retries and dead-lettering.
    pub retry: RetryJson,
    /// Most events pending at once.
    pub max_ack_pending: u32,
}

/// A subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionJson {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub config: SubscriptionConfigJson,
    /// The topics it currently reads.
    pub topics: Vec<String>,
    /// Its dead-letter topic.
    pub dead_letter_topic: String,
}

impl From<&SubscriptionInfo> for SubscriptionJson {
    fn from(s: &SubscriptionInfo) -> Self {
        let c = &s.config;
        SubscriptionJson {
            name: s.name.clone(),
            config: SubscriptionConfigJson {
                filter: c.filter.clone(),
                start: c.start.into(),
                mode: c.mode.into(),
                ack_wait_ms: c.ack_wait_ms,
                retry: (&c.retry).into(),
                max_ack_pending: c.max_ack_pending,
            },
            topics: s.topics.clone(),
            dead_letter_topic: s.dead_letter_topic.clone(),
        }
    }
}

/// Every subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionList {
    /// The subscriptions, by name.
    pub subscriptions: Vec<SubscriptionJson>,
}

/// Where to move a subscription; pending deliveries and retries are
/// dropped.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeekRequest {
    /// The position.
    pub to: StartJson,
}

/// A subscription's counters and backlog.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionStatsJson {
    /// The subscription.
    pub name: String,
    /// Deliveries handed out since the bus opened.
    pub delivered: u64,
    /// Redeliveries among them.
    pub redelivered: u64,
    /// Acks since the bus opened.
    pub acked: u64,
    /// Events dead-lettered since the bus opened.
    pub dead_lettered: u64,
    /// Events not yet settled.
    pub lag: u64,
    /// Deliveries whose lease is running.
    pub in_flight: u64,
    /// Events waiting for a retry or for their key.
    pub waiting: u64,
    /// Age of the oldest unsettled delivered event.
    pub oldest_unacked_age_ms: Option<u64>,
    /// Dead letters in its queue.
    pub dead_letters: u64,
}

impl From<&SubscriptionStats> for SubscriptionStatsJson {
    fn from(s: &SubscriptionStats) -> Self {
        SubscriptionStatsJson {
            name: s.name.clone(),
            delivered: s.delivered,
            redelivered: s.redelivered,
            acked: s.acked,
            dead_lettered: s.dead_lettered,
            lag: s.lag,
            in_flight: s.in_flight,
            waiting: s.waiting,
            oldest_unacked_age_ms: s.oldest_unacked_age_ms,
            dead_letters: s.dead_letters,
        }
    }
}

// ------------------------------------------------------------ deliveries

/// One delivery of an event to a consumer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryJson {
    /// Settles this delivery: `topic/partition/offset/seq`.
    pub ack_id: String,
    /// 1 for the first delivery, 2 for the first redelivery, ...
    pub attempt: u32,
    /// The lease ends then (ms since the epoch) unless extended.
    pub lease_deadline_ms: i64,
    /// The event.
    pub event: StoredEventJson,
}

impl From<&Delivery> for DeliveryJson {
    fn from(d: &Delivery) -> Self {
        DeliveryJson {
            ack_id: d.ack_id.to_string(),
            attempt: d.attempt,
            lease_deadline_ms: d.lease_deadline_ms,
            event: (&d.event).into(),
        }
    }
}

/// What a fetch asks for.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// At most this many deliveries, 1..=10000 (default 10).
    pub max: Option<u32>,
    /// If none is ready, wait up to this long, 0..=60000 ms (default 0).
    pub wait_ms: Option<u64>,
}

/// Deliveries handed to this caller, each with a lease.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FetchResponse {
    /// The deliveries.
    pub deliveries: Vec<DeliveryJson>,
}

/// Deliveries to ack.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Their ack ids (at most 10,000).
    pub ack_ids: Vec<String>,
}

/// Why one ack failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AckErrorJson {
    /// The stable error code.
    pub code: u16,
    /// The error's name.
    pub title: String,
    /// What went wrong.
    pub detail: String,
}

/// The outcome of one ack.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AckResult {
    /// The ack id.
    pub ack_id: String,
    /// Whether it was acked.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AckErrorJson>,
}

impl AckResult {
    pub(crate) fn failed(ack_id: String, problem: Problem) -> AckResult {
        AckResult {
            ack_id,
            ok: false,
            error: Some(AckErrorJson {
                code: problem.code,
                title: problem.title,
                detail: problem.detail,
            }),
        }
    }
}

/// One outcome per ack id, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AckResponse {
    /// The outcomes.
    pub results: Vec<AckResult>,
}

/// A failed delivery.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    /// The delivery.
    pub ack_id: String,
    /// Redeliver after this long instead of the retry policy's backoff.
    pub delay_ms: Option<u64>,
    /// Why it failed (kept with the event and its dead letter).
    pub error: Option<String>,
}

/// A lease to extend.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// The delivery.
    pub ack_id: String,
}

/// The extended lease.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExtendResponse {
    /// The new deadline (ms since the epoch).
    pub lease_deadline_ms: i64,
}

/// A delivery to dead-letter now (a non-retryable error).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateRequest {
    /// The delivery.
    pub ack_id: String,
    /// Why (kept in the dead letter).
    #[serde(default)]
    pub reason: String,
}

// ----------------------------------------------------------- dead letters

/// An event in a subscription's dead-letter queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterJson {
    /// Its id in the queue.
    pub id: u64,
    /// The subscription.
    pub subscription: String,
    /// `max_deliveries` or `terminated`.
    pub reason: String,
    /// Deliveries it got.
    pub attempts: u32,
    /// The last error a consumer gave.
    pub last_error: Option<String>,
    /// When it was dead-lettered (ms since the epoch).
    pub dead_at_ms: i64,
    /// Times it was redriven into its subscription before.
    pub redrives: u32,
    /// The original event, with its original topic, partition and offset.
    pub event: StoredEventJson,
}

impl From<&DeadLetter> for DeadLetterJson {
    fn from(d: &DeadLetter) -> Self {
        DeadLetterJson {
            id: d.id,
            subscription: d.subscription.clone(),
            reason: d.reason.as_str().to_string(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            dead_at_ms: d.dead_at_ms,
            redrives: d.redrives,
            event: (&d.event).into(),
        }
    }
}

/// A page of dead letters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// The dead letters, by id.
    pub dead_letters: Vec<DeadLetterJson>,
    /// The `from` of the next page.
    pub next_from: u64,
}

/// Dead letters to redrive: `ids`, or `all: true`; into the subscription,
/// or published to `to_topic`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// These dead letters.
    pub ids: Option<Vec<u64>>,
    /// All of them.
    #[serde(default)]
    pub all: bool,
    /// Publish them to this topic instead of the subscription.
    pub to_topic: Option<String>,
}

/// How many were redriven.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedriveResponse {
    /// The count.
    pub redriven: u64,
}

/// Dead letters to discard: `ids`, or `all: true`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// These dead letters.
    pub ids: Option<Vec<u64>>,
    /// All of them.
    #[serde(default)]
    pub all: bool,
}

/// How many were discarded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PurgeResponse {
    /// The count.
    pub purged: u64,
}

/// The server is up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// "ok".
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_bus::{Offset, Partition};
    use serde_json::json;

    fn object(v: serde_json::Value) -> RawObject {
        serde_json::from_str(&v.to_string()).expect("object")
    }

    #[test]
    fn plain_event_fields_map_to_the_event() {
        // Proves every documented field of a plain event lands in its
        // place, JSON data keeps its text and gets a JSON content type,
        // and a missing source defaults.
        let e = event_from_object(
            object(json!({
                "type": "OrderPlaced", "subject": "o-1", "time": 951_827_696_789i64,
                "dataschema": "s", "data": {"b": 1, "a": [true]}, "key": "k",
                "correlationid": "c", "causationid": "x", "traceparent": "t",
                "headers": {"tenant": "acme"}, "topic": "ignored", "offset": 3
            })),
            EventFormat::Plain,
        )
        .expect("event");
        assert_eq!(e.id, "");
        assert_eq!(e.source, DEFAULT_SOURCE);
        assert_eq!(e.ty, "OrderPlaced");
        assert_eq!(e.subject.as_deref(), Some("o-1"));
        assert_eq!(e.time_ms, Some(951_827_696_789));
        assert_eq!(e.data_content_type.as_deref(), Some("application/json"));
        assert_eq!(e.data_schema.as_deref(), Some("s"));
        assert_eq!(&e.data[..], br#"{"a":[true],"b":1}"#);
        assert_eq!(e.key.as_deref(), Some("k"));
        assert_eq!(e.correlation_id.as_deref(), Some("c"));
        assert_eq!(e.causation_id.as_deref(), Some("x"));
        assert_eq!(e.traceparent.as_deref(), Some("t"));
        assert_eq!(e.headers, vec![("tenant".to_string(), "acme".to_string())]);
    }

    #[test]
    fn json_data_text_is_kept_exactly() {
        // Proves data is stored as the JSON text sent (key order, number
        // spelling), which the `Value` route would not keep.
        let raw = r#"{"type":"T","data":{"z":1,"a":1.50}}"#;
        let e = event_from_object(serde_json::from_str(raw).expect("obj"), EventFormat::Plain)
            .expect("event");
        assert_eq!(&e.data[..], br#"{"z":1,"a":1.50}"#);
    }

    #[test]
    fn bad_event_objects_are_refused() {
        // Proves the checks of both formats: structured mode needs
        // specversion 1.0, id, source, type; plain mode refuses unknown
        // fields; data and data_base64 exclude each other.
        let structured = [
            json!({"id": "1", "source": "s", "type": "T"}),
            json!({"specversion": "0.3", "id": "1", "source": "s", "type": "T"}),
            json!({"specversion": "1.0", "source": "s", "type": "T"}),
            json!({"specversion": "1.0", "id": "1", "type": "T"}),
            json!({"specversion": "1.0", "id": "1", "source": "s"}),
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "T", "time": "yesterday"}),
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "T", "time": 5}),
            json!({"specversion": "1.0", "id": 1, "source": "s", "type": "T"}),
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "T", "ext": [1]}),
        ];
        for v in structured {
            assert!(
                event_from_object(object(v.clone()), EventFormat::Structured).is_err(),
                "{v}"
            );
        }
        let plain = [
            json!({"type": "T", "tenant": "x"}),
            json!({"type": "T", "data": 1, "data_base64": "AA=="}),
            json!({"type": "T", "data_base64": "!!"}),
            json!({"type": "T", "headers": {"a": 1}}),
            json!({"source": "s"}),
        ];
        for v in plain {
            assert!(
                event_from_object(object(v.clone()), EventFormat::Plain).is_err(),
                "{v}"
            );
        }
    }

    #[test]
    fn structured_extensions_become_headers_and_text_data_is_unquoted() {
        // Proves unknown CloudEvents attributes become headers (numbers as
        // text), and a JSON string under a non-JSON content type is the
        // data itself.
        let e = event_from_object(
            object(json!({
                "specversion": "1.0", "id": "1", "source": "s", "type": "T",
                "datacontenttype": "text/plain", "data": "hello", "tenant": "acme", "n": 5
            })),
            EventFormat::Structured,
        )
        .expect("event");
        assert_eq!(&e.data[..], b"hello");
        assert!(e.headers.contains(&("tenant".into(), "acme".into())));
        assert!(e.headers.contains(&("n".into(), "5".into())));
    }

    #[test]
    fn stored_event_output_shape() {
        // Proves the output: data inline for JSON that parses (text kept),
        // base64 otherwise, stored fields named as the CLI names them,
        // and a repeated header keeps its last value.
        let mut e = Event::new("T", r#"{"z":1,"a":2}"#).with_id("1");
        e.data_content_type = Some("application/json".into());
        e.headers = vec![("h".into(), "1".into()), ("h".into(), "2".into())];
        let s = StoredEvent {
            topic: "t".into(),
            partition: Partition(1),
            offset: Offset(2),
            timestamp_ms: 3,
            event: e.clone(),
        };
        let text = serde_json::to_string(&StoredEventJson::from(&s)).expect("json");
        assert!(text.contains(r#""data":{"z":1,"a":2}"#), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("parse");
        assert_eq!(v["headers"], json!({"h": "2"}));
        assert_eq!(
            (v["topic"].clone(), v["partition"].clone()),
            (json!("t"), json!(1))
        );
        assert_eq!(
            (v["offset"].clone(), v["timestamp"].clone()),
            (json!(2), json!(3))
        );
        assert_eq!(v["specversion"], "1.0");
        let s = StoredEvent {
            event: Event {
                data: Bytes::from_static(b"not json"),
                ..e
            },
            ..s
        };
        let v = serde_json::to_value(StoredEventJson::from(&s)).expect("json");
        assert_eq!(v["data_base64"], "bm90IGpzb24=");
        assert!(v.get("data").is_none());
    }
}
