//! `WireError`: an error as it travels in `Error`, `Acked` and `StreamEnd`
//! frames, and its mapping to and from [`BusError`] and [`ProtoError`].
//!
//! An error travels as its stable code, its message (the error's text, for
//! people and for clients that know nothing else) and named fields that
//! hold the variant's structured values as text, so that the other side
//! rebuilds the same `BusError` variant with the same fields:
//!
//! | code | variant | fields |
//! |---|---|---|
//! | 1001 | `InvalidName` | `what`, `name`, `reason` |
//! | 1002 | `InvalidPattern` | `pattern`, `reason` |
//! | 1003 | `InvalidArgument` | `what`, `reason` |
//! | 1004 | `LimitExceeded` | `what`, `setting`, `limit`, `actual` |
//! | 2001, 2002 | `TopicNotFound`, `TopicExists` | `topic` |
//! | 2003 | `PartitionNotFound` | `topic`, `partition`, `partitions` |
//! | 3001, 3002 | `SubscriptionNotFound`, `SubscriptionExists` | `subscription` |
//! | 4001–4004 | `AlreadyAcked`, `DeadLettered`, `LeaseExpired`, `UnknownDelivery` | `ack_id` |
//! | 5001 | `OffsetOutOfRange` | `requested`, `first`, `next` |
//! | 5002, 5003 | `DeadLetterNotFound`, `RedriveSourceGone` | `id` |
//! | 6001 | `Unauthenticated` | `detail` |
//! | 6002 | `PermissionDenied` | `principal`, `action`, `resource` |
//! | 9001–9003, 9005 | `Storage`, `Poisoned`, `Corrupt`, `Unavailable` | `detail` |
//! | 9004 | `Closed` | — |
//!
//! A missing or unparsable field is rebuilt as the empty string, 0, or —
//! for `reason` and `detail` — the message. `BusError`'s `what` and
//! `setting` are `&'static str`: their text is interned (at most
//! [`INTERNED_MAX`] distinct strings of at most [`INTERNED_BYTES_MAX`]
//! bytes per process, leaked once each; beyond that it reads
//! `"(unknown)"`). A code this crate does not know, including the 8xxx
//! protocol errors, becomes [`BusError::Unavailable`] with the code and
//! message in its text.

use std::sync::{Mutex, OnceLock};

use eddy_bus::{BusError, Offset, Partition};

use crate::error::{ProtoError, Result};
use crate::wire::{Reader, Wire, Writer};

/// Most named fields an error carries.
pub const ERROR_FIELDS_MAX: u32 = 16;
/// Most distinct `what` / `setting` strings interned per process.
pub const INTERNED_MAX: usize = 256;
/// Longest string that is interned.
pub const INTERNED_BYTES_MAX: usize = 64;

/// An error on the wire: a stable code (a `BusError::code` or a
/// `ProtoError::code`), a human-readable message, and the variant's fields
/// by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The stable code.
    pub code: u16,
    /// The error's text.
    pub message: String,
    /// The variant's structured values, by name, as text.
    pub fields: Vec<(String, String)>,
}

impl WireError {
    /// An error with no fields.
    pub fn new(code: u16, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// The value of the field `name`, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, name: &str) -> String {
        self.field(name).unwrap_or_default().to_string()
    }

    /// A free-text field, or the message if it is missing.
    fn prose(&self, name: &str) -> String {
        self.field(name).unwrap_or(&self.message).to_string()
    }

    fn number<T: std::str::FromStr + Default>(&self, name: &str) -> T {
        self.field(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }

    fn label(&self, name: &str) -> &'static str {
        intern(self.field(name).unwrap_or("(unknown)"))
    }

    /// The [`BusError`] this wire error stands for: the variant of its
    /// code, rebuilt from its fields (see the module docs).
    pub fn to_bus_error(&self) -> BusError {
        match self.code {
            1001 => BusError::InvalidName {
                what: self.label("what"),
                name: self.text("name"),
                reason: self.prose("reason"),
            },
            1002 => BusError::InvalidPattern {
                pattern: self.text("pattern"),
                reason: self.prose("reason"),
            },
            1003 => BusError::InvalidArgument {
                what: self.label("what"),
                reason: self.prose("reason"),
            },
            1004 => BusError::LimitExceeded {
                what: self.label("what"),
                setting: self.label("setting"),
                limit: self.number("limit"),
                actual: self.number("actual"),
            },
            2001 => BusError::TopicNotFound(self.text("topic")),
            2002 => BusError::TopicExists(self.text("topic")),
            2003 => BusError::PartitionNotFound {
                topic: self.text("topic"),
                partition: Partition(self.number("partition")),
                partitions: self.number("partitions"),
            },
            3001 => BusError::SubscriptionNotFound(self.text("subscription")),
            3002 => BusError::SubscriptionExists(self.text("subscription")),
            4001 => BusError::AlreadyAcked(self.text("ack_id")),
            4002 => BusError::DeadLettered(self.text("ack_id")),
            4003 => BusError::LeaseExpired(self.text("ack_id")),
            4004 => BusError::UnknownDelivery(self.text("ack_id")),
            5001 => BusError::OffsetOutOfRange {
                requested: Offset(self.number("requested")),
                first: Offset(self.number("first")),
                next: Offset(self.number("next")),
            },
            5002 => BusError::DeadLetterNotFound(self.number("id")),
            5003 => BusError::RedriveSourceGone(self.number("id")),
            7001 => BusError::WrongExpectedVersion {
                stream: self.text("stream"),
                expected: self.text("expected"),
                actual: self.field("actual").and_then(|v| v.parse().ok()),
            },
            7002 => BusError::StreamNotFound(self.text("stream")),
            7003 => BusError::EventIdInUse {
                id: self.text("id"),
                stream: self.text("stream"),
                version: self.number("version"),
            },
            6001 => BusError::Unauthenticated(self.prose("detail")),
            6002 => BusError::PermissionDenied {
                principal: self.text("principal"),
                action: self.label("action"),
                resource: self.text("resource"),
            },
            9001 => BusError::Storage(self.prose("detail")),
            9002 => BusError::Poisoned(self.prose("detail")),
            9003 => BusError::Corrupt(self.prose("detail")),
            9004 => BusError::Closed,
            9005 => BusError::Unavailable(self.prose("detail")),
            8000..=8999 => {
                BusError::Unavailable(format!("protocol error {}: {}", self.code, self.message))
            }
            code => BusError::Unavailable(format!("error {code}: {}", self.message)),
        }
    }
}

/// Builds the named fields of an error.
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn with(mut self, name: &str, value: impl ToString) -> Fields {
        self.0.push((name.to_string(), value.to_string()));
        self
    }
}

impl From<&BusError> for WireError {
    fn from(e: &BusError) -> WireError {
        let f = Fields::default();
        let fields = match e {
            BusError::InvalidName { what, name, reason } => f
                .with("what", what)
                .with("name", name)
                .with("reason", reason),
            BusError::InvalidPattern { pattern, reason } => {
                f.with("pattern", pattern).with("reason", reason)
            }
            BusError::InvalidArgument { what, reason } => {
                f.with("what", what).with("reason", reason)
            }
            BusError::LimitExceeded {
                what,
                setting,
                limit,
                actual,
            } => f
                .with("what", what)
                .with("setting", setting)
                .with("limit", limit)
                .with("actual", actual),
            BusError::TopicNotFound(topic) | BusError::TopicExists(topic) => f.with("topic", topic),
            BusError::PartitionNotFound {
                topic,
                partition,
                partitions,
            } => f
                .with("topic", topic)
                .with("partition", partition)
                .with("partitions", partitions),
            BusError::SubscriptionNotFound(s) | BusError::SubscriptionExists(s) => {
                f.with("subscription", s)
            }
            BusError::AlreadyAcked(id)
            | BusError::DeadLettered(id)
            | BusError::LeaseExpired(id)
            | BusError::UnknownDelivery(id) => f.with("ack_id", id),
            BusError::OffsetOutOfRange {
                requested,
                first,
                next,
            } => f
                .with("requested", requested)
                .with("first", first)
                .with("next", next),
            BusError::DeadLetterNotFound(id) | BusError::RedriveSourceGone(id) => f.with("id", id),
            BusError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => {
                let f = f.with("stream", stream).with("expected", expected);
                match actual {
                    Some(v) => f.with("actual", v),
                    None => f,
                }
            }
            BusError::StreamNotFound(stream) => f.with("stream", stream),
            BusError::EventIdInUse {
                id,
                stream,
                version,
            } => f
                .with("id", id)
                .with("stream", stream)
                .with("version", version),
            BusError::PermissionDenied {
                principal,
                action,
                resource,
            } => f
                .with("principal", principal)
                .with("action", action)
                .with("resource", resource),
            BusError::Unauthenticated(d)
            | BusError::Storage(d)
            | BusError::Poisoned(d)
            | BusError::Corrupt(d)
            | BusError::Unavailable(d) => f.with("detail", d),
            // `Closed`, and variants added later: the code and message.
            _ => f,
        };
        WireError {
            code: e.code(),
            message: e.to_string(),
            fields: fields.0,
        }
    }
}

impl From<BusError> for WireError {
    fn from(e: BusError) -> WireError {
        WireError::from(&e)
    }
}

impl From<&ProtoError> for WireError {
    fn from(e: &ProtoError) -> WireError {
        WireError::new(e.code(), e.to_string())
    }
}

impl From<WireError> for BusError {
    fn from(e: WireError) -> BusError {
        e.to_bus_error()
    }
}

/// `error`: u16 code, string message, list of (string name, string value).
impl Wire for WireError {
    fn put(&self, w: &mut Writer<'_>) {
        w.u16_le(self.code);
        w.put(&self.message);
        w.list("error fields", &self.fields, ERROR_FIELDS_MAX);
    }
    fn get(r: &mut Reader<'_>, _: &'static str) -> Result<Self> {
        Ok(WireError {
            code: r.u16_le("error code")?,
            message: r.get("error message")?,
            fields: r.list("error fields", ERROR_FIELDS_MAX)?,
        })
    }
}

/// An ack outcome: tag 0 (acked) or 1 followed by an error.
impl Wire for std::result::Result<(), WireError> {
    fn put(&self, w: &mut Writer<'_>) {
        match self {
            Ok(()) => w.u8(0),
            Err(e) => {
                w.u8(1);
                w.put(e);
            }
        }
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self> {
        match r.tag("ack outcome", 2)? {
            0 => Ok(Ok(())),
            _ => Ok(Err(r.get(what)?)),
        }
    }
}

/// A `&'static str` with the text of `s`: each distinct short text is
/// leaked once per process, up to [`INTERNED_MAX`] of them.
fn intern(s: &str) -> &'static str {
    const UNKNOWN: &str = "(unknown)";
    static TABLE: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    if s.len() > INTERNED_BYTES_MAX {
        return UNKNOWN;
    }
    let mut table = TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = table.iter().find(|t| **t == s) {
        return known;
    }
    if table.len() >= INTERNED_MAX {
        return UNKNOWN;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    table.push(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_bounded() {
        // Proves: interning returns the same text, reuses one copy per
        // distinct text, and refuses texts longer than the bound.
        let a = intern("event_bytes_max");
        assert_eq!(a, "event_bytes_max");
        assert!(std::ptr::eq(a, intern("event_bytes_max")));
        assert_eq!(intern(&"x".repeat(INTERNED_BYTES_MAX + 1)), "(unknown)");
    }

    #[test]
    fn missing_fields_fall_back_to_the_message() {
        // Proves: an error that carries only a code and a message (a
        // minimal server in another language) still maps to its variant,
        // with the message as its free text.
        let e = WireError::new(9001, "disk full");
        assert_eq!(e.to_bus_error(), BusError::Storage("disk full".into()));
        let e = WireError::new(1004, "too big");
        assert!(matches!(
            e.to_bus_error(),
            BusError::LimitExceeded {
                setting: "(unknown)",
                limit: 0,
                ..
            }
        ));
    }
}
