//! Correlation, causation and trace context carried from an event being
//! handled to the events its handler publishes.
//!
//! An event published while handling another — a follow-up — gets:
//! - `correlationid`: the incoming event's, or, when it has none, the
//!   incoming event's id (the transaction started there);
//! - `causationid`: the incoming event's id;
//! - `traceparent` (W3C Trace Context): the incoming trace, with the
//!   handler's span as the parent; when the incoming event carries no
//!   valid one, a new trace starts.
//!
//! So the events of one business transaction share a correlation id, and
//! their causation ids link each to the one that caused it: the flow can
//! be drawn back from the bus alone.

use std::fmt;

use eddy_bus::Event;

/// A W3C `traceparent` (version 00): the trace, the parent span, and the
/// trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header. Per the specification, a version
    /// other than 00 (but not ff) is read by its first four fields, and
    /// all-zero ids are invalid.
    pub fn parse(s: &str) -> Option<TraceParent> {
        let mut fields = s.split('-');
        let version = u8::from_str_radix(hex_field(fields.next()?, 2)?, 16).ok()?;
        let trace_id = hex_bytes::<16>(fields.next()?)?;
        let parent_id = hex_bytes::<8>(fields.next()?)?;
        let flags = hex_bytes::<1>(fields.next()?)?[0];
        let rest = fields.next();
        let valid_version = match version {
            0 => rest.is_none(),
            0xff => false,
            _ => true,
        };
        (valid_version && trace_id != [0; 16] && parent_id != [0; 8]).then_some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The same trace with `span` as the parent.
    pub fn child(&self, span: [u8; 8]) -> TraceParent {
        TraceParent {
            parent_id: span,
            ..*self
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        write_hex(f, &self.trace_id)?;
        f.write_str("-")?;
        write_hex(f, &self.parent_id)?;
        write!(f, "-{:02x}", self.flags)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// `s` if it is `len` lowercase hex digits.
fn hex_field(s: &str, len: usize) -> Option<&str> {
    (s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(s)
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = hex_field(s, 2 * N)?;
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Ids for new spans and traces; random in a service, fixed in tests.
pub trait IdSource {
    fn span_id(&mut self) -> [u8; 8];
    fn trace_id(&mut self) -> [u8; 16];
}

/// Random ids: a per-thread generator seeded once from the operating
/// system's randomness (a span id per handled event must not cost a
/// system call).
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn span_id(&mut self) -> [u8; 8] {
        nonzero(next_random()).to_be_bytes()
    }

    fn trace_id(&mut self) -> [u8; 16] {
        let hi = u128::from(next_random()) << 64;
        (hi | u128::from(nonzero(next_random()))).to_be_bytes()
    }
}

fn nonzero(n: u64) -> u64 {
    if n == 0 { 1 } else { n }
}

thread_local! {
    static RANDOM: std::cell::Cell<u64> = std::cell::Cell::new(seed());
}

/// A seed from the operating system; without its randomness (never seen),
/// the time and the thread, which differ between threads and processes.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() && bytes != [0; 8] {
        return u64::from_le_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let local = 0u8;
    nanos ^ ((&raw const local) as usize as u64).rotate_left(32) ^ u64::from(std::process::id())
}

/// splitmix64 over the thread's state: 2⁶⁴ distinct outputs before it
/// repeats.
fn next_random() -> u64 {
    RANDOM.with(|state| {
        let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// The trace context a handler of `incoming` works in: the incoming
/// trace continued with a new span, or a new trace.
pub fn handler_trace(incoming: &Event, ids: &mut impl IdSource) -> TraceParent {
    match incoming.traceparent.as_deref().and_then(TraceParent::parse) {
        Some(parent) => parent.child(ids.span_id()),
        None => TraceParent {
            trace_id: ids.trace_id(),
            parent_id: ids.span_id(),
            flags: 0x01,
        },
    }
}

/// Stamps `outgoing`, published while handling `incoming` within the
/// handler's `trace`, as its follow-up. What `outgoing` already carries is
/// replaced: the chain must not be broken by hand.
pub fn follow_up(incoming: &Event, trace: &TraceParent, mut outgoing: Event) -> Event {
    outgoing.correlation_id = Some(
        incoming
            .correlation_id
            .clone()
            .unwrap_or_else(|| incoming.id.clone()),
    );
    outgoing.causation_id = Some(incoming.id.clone());
    outgoing.traceparent = Some(trace.to_string());
    outgoing
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids counting up from 1, so tests can name them.
    #[derive(Default)]
    struct Counting(u8);

    impl IdSource for Counting {
        fn span_id(&mut self) -> [u8; 8] {
            self.0 += 1;
            [self.0; 8]
        }
        fn trace_id(&mut self) -> [u8; 16] {
            self.0 += 1;
            [self.0; 16]
        }
    }

    #[test]
    fn traceparent_round_trips_and_invalid_ones_are_refused() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(s).unwrap();
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), s);
        let refused = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for s in refused {
            assert_eq!(TraceParent::parse(s), None, "{s:?}");
        }
        // A later version is read by its first four fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert_eq!(TraceParent::parse(later), Some(tp));
    }

    #[test]
    fn a_chain_of_three_hops_shares_one_correlation_and_one_trace() {
        // OrderPlaced (from outside, no context) → InventoryReserved →
        // PaymentCompleted → ShipmentCreated.
        let mut ids = Counting::default();
        let placed = Event::new("OrderPlaced", "{}").with_id("e1");
        let trace1 = handler_trace(&placed, &mut ids);
        let reserved = follow_up(
            &placed,
            &trace1,
            Event::new("InventoryReserved", "{}").with_id("e2"),
        );
        let trace2 = handler_trace(&reserved, &mut ids);
        let paid = follow_up(
            &reserved,
            &trace2,
            Event::new("PaymentCompleted", "{}").with_id("e3"),
        );
        let trace3 = handler_trace(&paid, &mut ids);
        let shipped = follow_up(
            &paid,
            &trace3,
            Event::new("ShipmentCreated", "{}")
                .with_id("e4")
                .with_correlation_id("overwritten"),
        );

        for e in [&reserved, &paid, &shipped] {
            assert_eq!(e.correlation_id.as_deref(), Some("e1"), "{}", e.ty);
        }
        assert_eq!(reserved.causation_id.as_deref(), Some("e1"));
        assert_eq!(paid.causation_id.as_deref(), Some("e2"));
        assert_eq!(shipped.causation_id.as_deref(), Some("e3"));

        let tps: Vec<TraceParent> = [&reserved, &paid, &shipped]
            .iter()
            .map(|e| TraceParent::parse(e.traceparent.as_deref().unwrap()).unwrap())
            .collect();
        // One trace (started by the first handler), a new span per hop.
        assert!(tps.iter().all(|tp| tp.trace_id == tps[0].trace_id));
        assert_eq!(tps[0].trace_id, [1; 16]);
        let spans: Vec<[u8; 8]> = tps.iter().map(|tp| tp.parent_id).collect();
        assert_eq!(spans, [[2; 8], [3; 8], [4; 8]]);
    }

    #[test]
    fn an_incoming_trace_is_continued_with_its_flags() {
        let mut ids = Counting::default();
        let mut incoming = Event::new("OrderPlaced", "{}").with_id("e1");
        incoming.traceparent =
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".into());
        let trace = handler_trace(&incoming, &mut ids);
        assert_eq!(
            trace.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0101010101010101-00"
        );
    }

    #[test]
    fn random_ids_are_not_zero() {
        let mut ids = RandomIds;
        assert_ne!(ids.span_id(), [0; 8]);
        assert_ne!(ids.trace_id(), [0; 16]);
    }
}
