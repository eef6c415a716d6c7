//! The event: CloudEvents 1.0 attributes plus Eddy's extensions.

use bytes::Bytes;

use crate::error::{BusError, Result};
use crate::{Offset, Partition};

/// An event as a producer publishes it.
///
/// The CloudEvents attributes `id`, `source`, `type`, `subject`, `time`,
/// `datacontenttype`, `dataschema` and `data`, and the extensions `key`
/// (ordering and partition key), `correlationid`, `causationid` and
/// `traceparent`; further extension attributes go in `headers`. An empty
/// `id` is replaced by a generated unique one when published.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// Unique per producer; the key of idempotent publishing.
    pub id: String,
    /// Who produced it (a URI reference, e.g. `/services/orders`).
    pub source: String,
    /// What happened, past tense: `OrderPlaced`.
    pub ty: String,
    /// What it is about, within the source.
    pub subject: Option<String>,
    /// When it happened, by the producer's clock (ms since the Unix epoch).
    pub time_ms: Option<i64>,
    /// The media type of `data`.
    pub data_content_type: Option<String>,
    /// The schema `data` follows.
    pub data_schema: Option<String>,
    /// The payload.
    pub data: Bytes,
    /// Events with the same key go to the same partition, in order.
    pub key: Option<String>,
    /// The flow this event belongs to.
    pub correlation_id: Option<String>,
    /// The event that caused this one.
    pub causation_id: Option<String>,
    /// W3C trace context.
    pub traceparent: Option<String>,
    /// Further extension attributes, in order.
    pub headers: Vec<(String, String)>,
}

impl Event {
    /// An event of type `ty` with `data`, an empty id (generated on
    /// publish) and source `eddy`.
    pub fn new(ty: impl Into<String>, data: impl Into<Bytes>) -> Event {
        Event {
            source: "eddy".to_string(),
            ty: ty.into(),
            data: data.into(),
            ..Event::default()
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Event {
        self.id = id.into();
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Event {
        self.source = source.into();
        self
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<String>) -> Event {
        self.key = Some(key.into());
        self
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Event {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Event {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: impl Into<String>) -> Event {
        self.causation_id = Some(id.into());
        self
    }

    /// Adds an extension attribute.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Event {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks the event against `limits`: attribute lengths, header names
    /// and counts, and the whole event's size (approximated by
    /// [`Event::size_bytes`]).
    pub fn validate(&self, limits: &EventLimits) -> Result<()> {
        let too_long = |what: &'static str, actual: usize| BusError::LimitExceeded {
            what,
            setting: "attribute_bytes_max",
            limit: limits.attribute_bytes_max as u64,
            actual: actual as u64,
        };
        if self.id.len() > limits.id_bytes_max {
            return Err(BusError::LimitExceeded {
                what: "event id",
                setting: "id_bytes_max",
                limit: limits.id_bytes_max as u64,
                actual: self.id.len() as u64,
            });
        }
        if self.ty.is_empty() {
            return Err(BusError::InvalidArgument {
                what: "event type",
                reason: "an event needs a type (`OrderPlaced`)".into(),
            });
        }
        let attrs: [(&'static str, Option<&str>); 10] = [
            ("source", Some(&self.source)),
            ("type", Some(&self.ty)),
            ("subject", self.subject.as_deref()),
            ("datacontenttype", self.data_content_type.as_deref()),
            ("dataschema", self.data_schema.as_deref()),
            ("key", self.key.as_deref()),
            ("correlationid", self.correlation_id.as_deref()),
            ("causationid", self.causation_id.as_deref()),
            ("traceparent", self.traceparent.as_deref()),
            ("id", Some(&self.id)),
        ];
        for (what, value) in attrs {
            if let Some(v) = value
                && v.len() > limits.attribute_bytes_max
            {
                return Err(too_long(what, v.len()));
            }
        }
        if self.headers.len() > limits.headers_max {
            return Err(BusError::LimitExceeded {
                what: "header count",
                setting: "headers_max",
                limit: limits.headers_max as u64,
                actual: self.headers.len() as u64,
            });
        }
        for (name, value) in &self.headers {
            check_header_name(name)?;
            if value.len() > limits.attribute_bytes_max {
                return Err(too_long("header value", value.len()));
            }
        }
        let size = self.size_bytes();
        if size > limits.event_bytes_max {
            return Err(BusError::LimitExceeded {
                what: "event",
                setting: "event_bytes_max",
                limit: limits.event_bytes_max as u64,
                actual: size as u64,
            });
        }
        Ok(())
    }

    /// The event's size as counted against `event_bytes_max`: the bytes of
    /// every attribute, header and the data.
    pub fn size_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.id.len()
            + self.source.len()
            + self.ty.len()
            + opt(&self.subject)
            + self.time_ms.map_or(0, |_| 8)
            + opt(&self.data_content_type)
            + opt(&self.data_schema)
            + self.data.len()
            + opt(&self.key)
            + opt(&self.correlation_id)
            + opt(&self.causation_id)
            + opt(&self.traceparent)
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }
}

/// Header (extension attribute) names follow CloudEvents: 1 to 20 lowercase
/// ASCII letters or digits.
pub fn check_header_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidName {
            what: "header",
            name: name.to_string(),
            reason: "CloudEvents extension names are 1 to 20 lowercase ASCII letters or digits"
                .into(),
        })
    }
}

/// Size limits on events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Largest event, all attributes and data counted.
    pub event_bytes_max: usize,
    /// Longest event id.
    pub id_bytes_max: usize,
    /// Longest attribute or header value.
    pub attribute_bytes_max: usize,
    /// Most headers on one event.
    pub headers_max: usize,
}

impl Default for EventLimits {
    /// 1 MiB events, 256-byte ids, 4 KiB attributes, 64 headers.
    fn default() -> Self {
        EventLimits {
            event_bytes_max: 1024 * 1024,
            id_bytes_max: 256,
            attribute_bytes_max: 4096,
            headers_max: 64,
        }
    }
}

/// An event as the bus stored it: where and when, and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The topic it was published to.
    pub topic: String,
    /// Its partition.
    pub partition: Partition,
    /// Its offset within the partition.
    pub offset: Offset,
    /// When the bus appended it (ms since the Unix epoch).
    pub timestamp_ms: i64,
    /// The event.
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_their_setting() {
        let limits = EventLimits {
            event_bytes_max: 100,
            ..EventLimits::default()
        };
        let e = Event::new("OrderPlaced", vec![0u8; 200]);
        match e.validate(&limits) {
            Err(BusError::LimitExceeded {
                setting: "event_bytes_max",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(Event::new("OrderPlaced", "{}").validate(&limits).is_ok());
        let e = Event::new("OrderPlaced", "").with_id("x".repeat(300));
        assert!(matches!(
            e.validate(&EventLimits::default()),
            Err(BusError::LimitExceeded {
                setting: "id_bytes_max",
                ..
            })
        ));
        let e = Event::new("", "");
        assert!(e.validate(&limits).is_err());
        let e = Event::new("T", "").with_header("Bad-Name", "v");
        assert!(matches!(
            e.validate(&limits),
            Err(BusError::InvalidName { .. })
        ));
    }
}
