//! Push streams: one task per open `Subscribe`, driving
//! [`Bus::subscribe`] and sending `Deliver` frames with the `Subscribe`'s
//! request id, within the credit the client has granted.
//!
//! Credit scheme: the bus's push stream is opened with a window of the
//! `Subscribe`'s credit (at most [`FETCH_MAX`]), and each delivery sent is
//! kept here as its [`PushDelivery`], which holds one credit of that
//! window, until the client grants credit back with a `Credit` frame: a
//! grant of `n` releases the `n` oldest held deliveries (a grant that
//! finds fewer held is kept for the next ones sent). So the bus leases a
//! delivery for this stream only when the client has credit for it, and no
//! leased delivery waits in a server buffer for credit that has not come.
//! Separately, the protocol's unused credit (the `Subscribe`'s, plus
//! grants, minus deliveries sent, capped at [`CREDIT_UNUSED_MAX`]) gates
//! every `Deliver`: the server never sends a delivery without it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::Duration;

use eddy_bus::{Bus, BusError, FETCH_MAX, PushDelivery, PushOptions};
use eddy_proto::{LIST_ITEMS_MAX, Response, WireError};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use crate::connection::Outgoing;

/// Most unused credit of one push stream; grants beyond it are ignored.
pub const CREDIT_UNUSED_MAX: u32 = 10_000;

/// How long a stream waits after a bus error that does not end it, before
/// it fetches again.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(100);

const RUNNING: u8 = 0;
const UNSUBSCRIBED: u8 = 1;
const CLOSING: u8 = 2;

/// The connection's handle on one push stream: credit grants and the stop
/// signal. No queue: grants add up in one counter, so a client sending
/// `Credit` frames faster than the stream runs costs no memory.
#[derive(Debug, Default)]
pub(crate) struct StreamControl {
    granted: AtomicU32,
    stop: AtomicU8,
    wake: Notify,
}

impl StreamControl {
    /// Adds `credit` to the grants not yet taken by the stream.
    pub(crate) fn grant(&self, credit: u32) {
        let _ = self
            .granted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |g| {
                Some(g.saturating_add(credit).min(CREDIT_UNUSED_MAX))
            });
        self.wake.notify_one();
    }

    /// Ends the stream: by the client's `Unsubscribe` (its `StreamEnd` has
    /// no error), or because the connection is closing.
    pub(crate) fn stop(&self, unsubscribed: bool) {
        let state = if unsubscribed { UNSUBSCRIBED } else { CLOSING };
        let _ = self
            .stop
            .compare_exchange(RUNNING, state, Ordering::AcqRel, Ordering::Acquire);
        self.wake.notify_one();
    }
}

/// One push stream, from its `Subscribe` to its `StreamEnd`.
pub(crate) struct PushStream<B> {
    /// The stream's share of the connection's `pending_bytes_max`, held
    /// until its `StreamEnd` is written.
    pub(crate) budget: OwnedSemaphorePermit,
    pub(crate) bus: B,
    pub(crate) request_id: u64,
    pub(crate) subscription: String,
    pub(crate) credit: u32,
    pub(crate) wait_ms: u64,
    pub(crate) control: Arc<StreamControl>,
    pub(crate) out: mpsc::Sender<Outgoing>,
}

impl<B: Bus + Clone> PushStream<B> {
    /// Runs the stream and sends its `StreamEnd`, which frees its request
    /// id.
    pub(crate) async fn run(self) {
        let error = self.drive().await;
        let end = Outgoing {
            request_id: self.request_id,
            response: Response::StreamEnd { error },
            settles: true,
            budget: Some(self.budget),
        };
        let _ = self.out.send(end).await;
    }

    /// Pushes deliveries until the stream ends; returns why it ended
    /// (`None`: unsubscribed, or the connection is gone).
    async fn drive(&self) -> Option<WireError> {
        if self.credit == 0 {
            return Some(WireError::from(BusError::InvalidArgument {
                what: "credit",
                reason: "a Subscribe grants at least 1 credit".into(),
            }));
        }
        let mut unused = self.credit.min(CREDIT_UNUSED_MAX);
        let window = self.credit.min(FETCH_MAX);
        let mut stream = self.bus.subscribe(
            &self.subscription,
            PushOptions {
                credit: window,
                wait_ms: self.wait_ms,
            },
        );
        // Sent deliveries still holding their credit of the bus window.
        let mut held: VecDeque<PushDelivery> = VecDeque::new();
        // Credit granted that found no held delivery to release yet.
        let mut release: u64 = 0;
        // An item taken from the bus stream while filling a batch, not yet
        // handled.
        let mut stashed = None;
        loop {
            let granted = self.control.granted.swap(0, Ordering::AcqRel);
            let add = granted.min(CREDIT_UNUSED_MAX - unused);
            unused += add;
            release += u64::from(add);
            while release > 0 && held.pop_front().is_some() {
                release -= 1;
            }
            match self.control.stop.load(Ordering::Acquire) {
                RUNNING => {}
                UNSUBSCRIBED => return None,
                _ => {
                    return Some(WireError::from(BusError::Unavailable(
                        "the connection is closing".into(),
                    )));
                }
            }
            let item = match stashed.take() {
                Some(item) => item,
                None => tokio::select! {
                    () = self.control.wake.notified() => continue,
                    item = stream.next(), if unused > 0 => item,
                },
            };
            match item {
                Some(Ok(first)) => {
                    // Take whatever else is ready at once, within credit.
                    let mut batch = vec![first];
                    let room = unused.min(LIST_ITEMS_MAX) as usize;
                    while batch.len() < room {
                        match stream.next().now_or_never() {
                            Some(Some(Ok(more))) => batch.push(more),
                            Some(other) => {
                                stashed = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    unused -= batch.len() as u32;
                    let deliveries = batch.iter().map(|p| p.delivery.clone()).collect();
                    let deliver = Outgoing {
                        request_id: self.request_id,
                        response: Response::Deliver(deliveries),
                        settles: false,
                        budget: None,
                    };
                    if self.out.send(deliver).await.is_err() {
                        return None;
                    }
                    held.extend(batch);
                }
                Some(Err(e)) if ends_stream(&e) => return Some(WireError::from(&e)),
                Some(Err(e)) => {
                    let error = Outgoing {
                        request_id: self.request_id,
                        response: Response::Error(WireError::from(&e)),
                        settles: false,
                        budget: None,
                    };
                    if self.out.send(error).await.is_err() {
                        return None;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_AFTER_ERROR) => {}
                        () = self.control.wake.notified() => {}
                    }
                }
                None => return Some(WireError::from(BusError::Closed)),
            }
        }
    }
}

/// Errors after which the bus's push stream does not recover.
fn ends_stream(e: &BusError) -> bool {
    matches!(
        e,
        BusError::SubscriptionNotFound(_) | BusError::Closed | BusError::InvalidArgument { .. }
    )
}
