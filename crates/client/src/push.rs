//! Push streams over the wire (`docs/protocol.md`, "Push delivery and
//! credit"): `Subscribe` opens one under a request id, the reader task
//! routes its `Deliver`, `Error` and `StreamEnd` frames here, and a small
//! task per stream sends `Credit` and `Unsubscribe`.
//!
//! Credit: of the stream's `credit`, every unit is at any time in exactly
//! one place — unused at the server (`outstanding`), a delivery buffered
//! here or held by the application (a [`PushDelivery`]), or returned by a
//! dropped `PushDelivery` and not yet granted back (`released`). The credit
//! task grants everything released since it last ran in one `Credit`
//! frame, adding it to `outstanding` before the frame leaves. A `Deliver`
//! beyond `outstanding` breaks the protocol, so the buffer never holds
//! more than `credit` deliveries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use eddy_bus::{BusError, Delivery, DeliveryStream, FETCH_MAX, PushDelivery, PushOptions, Result};
use eddy_proto::{Request, Response};
use futures_util::StreamExt;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::{Client, Conn, Route};

/// Most `Error` frames (failures that do not end the stream) kept for the
/// application at once; further ones are dropped until it reads some.
const ERRORS_QUEUED_MAX: usize = 16;

/// The state of one push stream, shared by the reader task (which fills
/// it), the application's stream (which drains it), the credit task, and
/// the deliveries handed out (which return their credit to it).
#[derive(Debug)]
pub(crate) struct StreamShared {
    queue: Mutex<Queue>,
    /// Wakes the application's stream: something was queued, or the end.
    arrived: Notify,
    /// Credit returned by dropped deliveries, not yet granted back.
    released: AtomicU32,
    /// Credit the server may still use (granted minus delivered).
    outstanding: AtomicU32,
    /// Wakes the credit task: credit released, stream dropped or ended.
    control: Notify,
    /// The application dropped its stream.
    dropped: AtomicBool,
}

#[derive(Debug)]
struct Queue {
    /// Deliveries and non-ending errors, in the order they came; at most
    /// `credit` deliveries and [`ERRORS_QUEUED_MAX`] errors.
    items: VecDeque<Result<Delivery>>,
    errors: usize,
    end: End,
}

#[derive(Debug)]
enum End {
    Open,
    /// Over, with the error to report (if any) once `items` are drained.
    Ended(Option<BusError>),
    /// Over and reported.
    Reported,
}

impl StreamShared {
    fn new(credit: u32) -> StreamShared {
        StreamShared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                errors: 0,
                end: End::Open,
            }),
            arrived: Notify::new(),
            released: AtomicU32::new(0),
            outstanding: AtomicU32::new(credit),
            control: Notify::new(),
            dropped: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_ended(&self) -> bool {
        !matches!(self.lock().end, End::Open)
    }

    /// Takes one frame the server sent on this stream. `Ok(true)`: the
    /// stream goes on; `Ok(false)`: it is over (its id is free);
    /// `Err(why)`: the server broke the protocol.
    pub(crate) fn receive(&self, response: Response) -> std::result::Result<bool, String> {
        match response {
            Response::Deliver(deliveries) => {
                let count = u32::try_from(deliveries.len()).unwrap_or(u32::MAX);
                let within =
                    self.outstanding
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| {
                            o.checked_sub(count)
                        });
                if let Err(unused) = within {
                    return Err(format!(
                        "protocol: the server pushed {count} deliveries on a stream with \
                         {unused} credit unused"
                    ));
                }
                let mut queue = self.lock();
                if matches!(queue.end, End::Open) && !self.dropped.load(Ordering::Acquire) {
                    queue.items.extend(deliveries.into_iter().map(Ok));
                    drop(queue);
                    self.arrived.notify_one();
                }
                Ok(true)
            }
            // A protocol error (8013: too many in flight, the Subscribe was
            // not admitted) means no `StreamEnd` will come.
            Response::Error(e) if (8000..=8999).contains(&e.code) => {
                self.end(Some(e.to_bus_error()));
                Ok(false)
            }
            Response::Error(e) => {
                let mut queue = self.lock();
                if queue.errors < ERRORS_QUEUED_MAX && matches!(queue.end, End::Open) {
                    queue.errors += 1;
                    queue.items.push_back(Err(e.to_bus_error()));
                    drop(queue);
                    self.arrived.notify_one();
                }
                Ok(true)
            }
            Response::StreamEnd { error } => {
                self.end(error.map(|e| e.to_bus_error()));
                Ok(false)
            }
            other => Err(format!(
                "protocol: unexpected response kind {} on a push stream",
                other.kind().name()
            )),
        }
    }

    /// Ends the stream (the first end counts) and wakes both of its tasks.
    fn end(&self, error: Option<BusError>) {
        {
            let mut queue = self.lock();
            if matches!(queue.end, End::Open) {
                queue.end = End::Ended(error);
            }
        }
        self.arrived.notify_one();
        self.control.notify_one();
    }

    /// Returns one credit: called when a delivery is dropped.
    fn release(&self) {
        self.released.fetch_add(1, Ordering::AcqRel);
        self.control.notify_one();
    }
}

/// A push stream's entry among a connection's requests: its shared state
/// and its in-flight slot, held until the server's `StreamEnd`.
#[derive(Debug)]
pub(crate) struct StreamRoute {
    shared: Arc<StreamShared>,
    _slot: OwnedSemaphorePermit,
}

impl StreamRoute {
    pub(crate) fn shared(&self) -> Arc<StreamShared> {
        Arc::clone(&self.shared)
    }

    /// The connection is gone: the stream ends with `Unavailable`.
    pub(crate) fn lost(&self, why: &str) {
        self.shared.end(Some(BusError::Unavailable(format!(
            "{why}; the push stream ended (subscribe again)"
        ))));
    }
}

/// The application's hold on an open stream: dropping it unsubscribes.
struct Subscription {
    shared: Arc<StreamShared>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.dropped.store(true, Ordering::Release);
        // Deliveries never handed out keep their leases until these run
        // out; nothing here needs them any more.
        let mut queue = self.shared.lock();
        queue.items.clear();
        queue.errors = 0;
        drop(queue);
        self.shared.control.notify_one();
    }
}

impl Subscription {
    /// The next delivery or error; `None` once the stream is over and its
    /// end was reported.
    async fn next(&self) -> Option<Result<PushDelivery>> {
        loop {
            {
                let mut queue = self.shared.lock();
                match queue.items.pop_front() {
                    Some(Ok(delivery)) => {
                        let shared = Arc::clone(&self.shared);
                        let pushed = PushDelivery::new(delivery, move || shared.release());
                        return Some(Ok(pushed));
                    }
                    Some(Err(e)) => {
                        queue.errors -= 1;
                        return Some(Err(e));
                    }
                    None => {}
                }
                match &mut queue.end {
                    End::Open => {}
                    End::Ended(error) => {
                        let error = error.take();
                        queue.end = End::Reported;
                        return error.map(Err);
                    }
                    End::Reported => return None,
                }
            }
            // One waiter, woken with `notify_one`: a wake between the check
            // above and this wait is kept, not lost.
            self.shared.arrived.notified().await;
        }
    }
}

/// Sends the stream's `Credit` and `Unsubscribe` frames until it ends.
/// Holds the connection, so that the stream outlives the `Client` it came
/// from.
async fn credit_task(conn: Arc<Conn>, id: u64, shared: Arc<StreamShared>) {
    loop {
        shared.control.notified().await;
        if shared.is_ended() {
            return;
        }
        if shared.dropped.load(Ordering::Acquire) {
            // Best effort: if it cannot be sent, the connection is gone and
            // the server ends the stream anyway.
            let _ = conn.send_on_stream(id, Request::Unsubscribe).await;
            return;
        }
        let credit = shared.released.swap(0, Ordering::AcqRel);
        if credit > 0 {
            // Counted before it is sent, so that the deliveries it allows
            // are never taken for a breach of credit.
            shared.outstanding.fetch_add(credit, Ordering::AcqRel);
            if conn
                .send_on_stream(id, Request::Credit { credit })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

impl Client {
    /// Sends the `Subscribe` and starts the stream's credit task.
    async fn open_stream(&self, subscription: String, credit: u32) -> Result<Subscription> {
        let shared = Arc::new(StreamShared::new(credit));
        let route = |slot| {
            Route::Stream(StreamRoute {
                shared: Arc::clone(&shared),
                _slot: slot,
            })
        };
        let request = Request::Subscribe {
            subscription,
            credit,
        };
        let (conn, id) = self.start(request, route).await?;
        tokio::spawn(credit_task(conn, id, Arc::clone(&shared)));
        Ok(Subscription { shared })
    }
}

enum Phase {
    Refused(BusError),
    Start(Client, String, u32),
    Open(Subscription),
    Done,
}

/// [`Bus::subscribe`](eddy_bus::Bus::subscribe) over the wire; the
/// `Subscribe` is sent when the stream is first polled.
pub(crate) fn subscribe(
    client: Client,
    subscription: String,
    options: PushOptions,
) -> DeliveryStream {
    let phase = if options.credit == 0 || options.credit > FETCH_MAX {
        Phase::Refused(BusError::InvalidArgument {
            what: "credit",
            reason: format!("must be 1..={FETCH_MAX}, not {}", options.credit),
        })
    } else {
        Phase::Start(client, subscription, options.credit)
    };
    futures_util::stream::unfold(phase, |phase| async move {
        let open = match phase {
            Phase::Refused(e) => return Some((Err(e), Phase::Done)),
            Phase::Done => return None,
            Phase::Open(open) => open,
            Phase::Start(client, subscription, credit) => {
                match client.open_stream(subscription, credit).await {
                    Ok(open) => open,
                    Err(e) => return Some((Err(e), Phase::Done)),
                }
            }
        };
        let item = open.next().await?;
        Some((item, Phase::Open(open)))
    })
    .boxed()
}
