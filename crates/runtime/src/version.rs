//! Schema versions of event types, and upcasters that turn an old
//! version's data into the current one before a handler sees it.
//!
//! An event carries its type's schema version in the `eventversion`
//! extension attribute (a header here; `ce-eventversion` in the CloudEvents
//! HTTP binding); an event without one is version 1. A service registers,
//! per type, one upcaster per step — version 1 → 2, 2 → 3, … — and the
//! current version is the last step's target. Data is JSON: each step
//! takes the old document and returns the new one, so old events stay in
//! the log as they were written and are read as the current version.

use std::collections::HashMap;
use std::fmt;

use eddy_bus::Event;
use serde_json::Value;

/// The extension attribute that holds an event's schema version.
pub const VERSION_HEADER: &str = "eventversion";

/// Why an event could not be brought to the current version. None of
/// these improves on redelivery: a handler should dead-letter the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("the `{VERSION_HEADER}` of a {ty} event is {value:?}, not a version (1, 2, …)")]
    InvalidVersion { ty: String, value: String },
    #[error(
        "a {ty} event is version {version}, newer than this service knows ({current}): \
         deploy a service that knows it"
    )]
    Newer {
        ty: String,
        version: u32,
        current: u32,
    },
    #[error("the data of a {ty} event is not JSON: {reason}")]
    NotJson { ty: String, reason: String },
    #[error("upcasting a {ty} event from version {from}: {reason}")]
    Step {
        ty: String,
        from: u32,
        reason: String,
    },
    #[error(
        "an upcaster for {ty} from version {from} was registered, but the next one \
         must start at version {expected}"
    )]
    OutOfOrder {
        ty: String,
        from: u32,
        expected: u32,
    },
}

/// The schema version `event` declares (1 when it declares none).
pub fn version_of(event: &Event) -> Result<u32, VersionError> {
    let invalid = |value: &str| VersionError::InvalidVersion {
        ty: event.ty.clone(),
        value: value.to_string(),
    };
    match event
        .headers
        .iter()
        .find(|(name, _)| name == VERSION_HEADER)
    {
        None => Ok(1),
        Some((_, value)) => match value.parse::<u32>() {
            Ok(v) if v >= 1 && !value.starts_with(['+', '0']) => Ok(v),
            _ => Err(invalid(value)),
        },
    }
}

/// `event`, declaring schema version `version` (replacing any it had).
pub fn with_version(mut event: Event, version: u32) -> Event {
    event.headers.retain(|(name, _)| name != VERSION_HEADER);
    event
        .headers
        .push((VERSION_HEADER.to_string(), version.to_string()));
    event
}

/// One step: the document of version n to the document of version n + 1.
type Step = Box<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// The upcasters of a service, per event type.
#[derive(Default)]
pub struct Upcasters {
    /// Per type, the steps from version 1 on: `steps[i]` turns i + 1 into
    /// i + 2.
    types: HashMap<String, Vec<Step>>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.types.iter().map(|(ty, steps)| (ty, steps.len() + 1)))
            .finish()
    }
}

impl Upcasters {
    pub fn new() -> Upcasters {
        Upcasters::default()
    }

    /// Registers the step of `ty` from version `from` to `from + 1`. Steps
    /// are registered in order, from version 1.
    pub fn register(
        &mut self,
        ty: &str,
        from: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Result<&mut Upcasters, VersionError> {
        let steps = self.types.entry(ty.to_string()).or_default();
        let expected = steps.len() as u32 + 1;
        if from != expected {
            return Err(VersionError::OutOfOrder {
                ty: ty.to_string(),
                from,
                expected,
            });
        }
        steps.push(Box::new(step));
        Ok(self)
    }

    /// The current schema version of `ty`: 1 plus its steps.
    pub fn current(&self, ty: &str) -> u32 {
        self.types.get(ty).map_or(1, |steps| steps.len() as u32 + 1)
    }

    /// Whether `event`'s data is of an older version that must be upcast
    /// before it is decoded (`false`: it is current, decode it as it is);
    /// an error for a version newer than the current one.
    pub fn needs_upcast(&self, event: &Event) -> Result<bool, VersionError> {
        let version = version_of(event)?;
        let current = self.current(&event.ty);
        if version > current {
            return Err(VersionError::Newer {
                ty: event.ty.clone(),
                version,
                current,
            });
        }
        Ok(version < current)
    }

    /// `event`'s data as the current version of its type.
    pub fn upcast(&self, event: &Event) -> Result<Value, VersionError> {
        let ty = &event.ty;
        let version = version_of(event)?;
        let current = self.current(ty);
        if version > current {
            return Err(VersionError::Newer {
                ty: ty.clone(),
                version,
                current,
            });
        }
        let mut doc: Value =
            serde_json::from_slice(&event.data).map_err(|e| VersionError::NotJson {
                ty: ty.clone(),
                reason: e.to_string(),
            })?;
        let steps = self.types.get(ty).map_or(&[][..], Vec::as_slice);
        for (i, step) in steps.iter().enumerate().skip(version as usize - 1) {
            doc = step(doc).map_err(|reason| VersionError::Step {
                ty: ty.clone(),
                from: i as u32 + 1,
                reason,
            })?;
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// OrderPlaced: v1 `{"amount_cents": n}` → v2 `{"amount": {"cents": n,
    /// "currency": "EUR"}}` → v3 adds `"channel": "web"`.
    fn shop() -> Upcasters {
        let mut up = Upcasters::new();
        up.register("OrderPlaced", 1, |v1| {
            let cents = v1["amount_cents"]
                .as_u64()
                .ok_or("no amount_cents in a version 1 OrderPlaced")?;
            Ok(json!({ "amount": { "cents": cents, "currency": "EUR" } }))
        })
        .unwrap()
        .register("OrderPlaced", 2, |mut v2| {
            v2["channel"] = json!("web");
            Ok(v2)
        })
        .unwrap();
        up
    }

    fn placed(data: Value) -> Event {
        Event::new("OrderPlaced", serde_json::to_vec(&data).unwrap())
    }

    #[test]
    fn an_old_event_reaches_the_current_version_step_by_step() {
        let up = shop();
        assert_eq!(up.current("OrderPlaced"), 3);
        let want = json!({ "amount": { "cents": 1250, "currency": "EUR" }, "channel": "web" });
        // No header: version 1.
        let v1 = placed(json!({ "amount_cents": 1250 }));
        assert_eq!(up.upcast(&v1).unwrap(), want);
        let v2 = with_version(
            placed(json!({ "amount": { "cents": 1250, "currency": "EUR" } })),
            2,
        );
        assert_eq!(up.upcast(&v2).unwrap(), want);
        let v3 = with_version(placed(want.clone()), 3);
        assert_eq!(
            up.upcast(&v3).unwrap(),
            want,
            "the current version as it is"
        );
        // A type without upcasters is at version 1 and passes as it is.
        let other = Event::new("OrderShipped", r#"{"id":1}"#);
        assert_eq!(up.upcast(&other).unwrap(), json!({ "id": 1 }));
    }

    #[test]
    fn what_cannot_be_upcast_says_why() {
        let up = shop();
        let newer = with_version(placed(json!({})), 4);
        assert!(matches!(
            up.upcast(&newer),
            Err(VersionError::Newer {
                version: 4,
                current: 3,
                ..
            })
        ));
        for bad in ["0", "two", "-1", "+2", "02", ""] {
            let mut e = placed(json!({}));
            e.headers.push((VERSION_HEADER.into(), bad.into()));
            assert!(
                matches!(up.upcast(&e), Err(VersionError::InvalidVersion { .. })),
                "{bad:?}"
            );
        }
        let garbage = Event::new("OrderPlaced", "not json");
        assert!(matches!(
            up.upcast(&garbage),
            Err(VersionError::NotJson { .. })
        ));
        let step_fails = placed(json!({ "total": 3 }));
        match up.upcast(&step_fails) {
            Err(VersionError::Step {
                from: 1, reason, ..
            }) => {
                assert!(reason.contains("amount_cents"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn steps_are_registered_in_order_and_versions_replaced() {
        let mut up = Upcasters::new();
        assert!(matches!(
            up.register("OrderPlaced", 2, Ok),
            Err(VersionError::OutOfOrder {
                from: 2,
                expected: 1,
                ..
            })
        ));
        up.register("OrderPlaced", 1, Ok).unwrap();
        assert_eq!(up.current("OrderPlaced"), 2);
        let e = with_version(with_version(placed(json!({})), 5), 2);
        assert_eq!(version_of(&e), Ok(2));
        assert_eq!(e.headers.len(), 1);
        // The attribute is a valid header for the bus, so it is stored.
        e.validate(&eddy_bus::EventLimits::default()).unwrap();
    }
}
