//! Push delivery on top of [`Bus::fetch`], with credit-based flow control:
//! the stream holds one credit per delivery the caller still holds, and
//! fetches only as many as it has credits.
//!
//! A [`Bus`] with its own push transport (a network client, say) builds
//! its deliveries with [`PushDelivery::new`], giving the action that
//! returns the credit when the caller drops the delivery.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{BusError, Result};
use crate::model::{Delivery, FetchOptions};
use crate::{Bus, FETCH_MAX, WAIT_MS_MAX};

/// Settings of a push stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOptions {
    /// Most deliveries the caller holds at once, 1..=[`FETCH_MAX`].
    pub credit: u32,
    /// How long each underlying fetch waits.
    pub wait_ms: u64,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            credit: 64,
            wait_ms: 1000,
        }
    }
}

/// A delivery from a push stream. It holds one credit of its stream until
/// it is dropped: settle it (ack, nack, ...) and drop it.
#[derive(Debug)]
pub struct PushDelivery {
    /// The delivery.
    pub delivery: Delivery,
    _credit: Credit,
}

impl PushDelivery {
    /// A delivery whose credit is returned by calling `release`, once, when
    /// it is dropped: for a [`Bus`] implementing
    /// [`subscribe`](Bus::subscribe) with its own flow control.
    pub fn new(delivery: Delivery, release: impl FnOnce() + Send + Sync + 'static) -> PushDelivery {
        PushDelivery {
            delivery,
            _credit: Credit::Release(Some(Box::new(release))),
        }
    }
}

/// One credit of a push stream, returned when dropped.
enum Credit {
    /// A permit of the fetch-based stream's semaphore.
    Permit { _permit: OwnedSemaphorePermit },
    /// An action that returns the credit (taken when it runs).
    Release(Option<Box<dyn FnOnce() + Send + Sync>>),
}

impl Drop for Credit {
    fn drop(&mut self) {
        if let Credit::Release(release) = self
            && let Some(release) = release.take()
        {
            release();
        }
    }
}

impl std::fmt::Debug for Credit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credit::Permit { .. } => f.write_str("Credit::Permit"),
            Credit::Release(_) => f.write_str("Credit::Release"),
        }
    }
}

/// A stream of push deliveries.
pub type DeliveryStream = Pin<Box<dyn Stream<Item = Result<PushDelivery>> + Send>>;

struct State<B> {
    bus: B,
    subscription: String,
    options: PushOptions,
    credits: Arc<Semaphore>,
    ready: VecDeque<PushDelivery>,
    done: bool,
}

pub(crate) fn stream<B: Bus + Clone>(
    bus: B,
    subscription: String,
    options: PushOptions,
) -> DeliveryStream {
    let bad =
        (options.credit == 0 || options.credit > FETCH_MAX).then(|| BusError::InvalidArgument {
            what: "credit",
            reason: format!("must be 1..={FETCH_MAX}, not {}", options.credit),
        });
    let state = State {
        bus,
        subscription,
        options: PushOptions {
            wait_ms: options.wait_ms.clamp(1, WAIT_MS_MAX),
            ..options
        },
        credits: Arc::new(Semaphore::new(options.credit.clamp(1, FETCH_MAX) as usize)),
        ready: VecDeque::new(),
        done: false,
    };
    let s = futures_util::stream::unfold((state, bad), |(mut st, bad)| async move {
        if let Some(e) = bad {
            st.done = true;
            return Some((Err(e), (st, None)));
        }
        if st.done {
            return None;
        }
        loop {
            if let Some(d) = st.ready.pop_front() {
                return Some((Ok(d), (st, None)));
            }
            // Wait for one credit, then take what else is free.
            let first = Arc::clone(&st.credits).acquire_owned().await.ok()?;
            let mut permits = vec![first];
            while let Ok(p) = Arc::clone(&st.credits).try_acquire_owned() {
                permits.push(p);
            }
            let options = FetchOptions {
                max: permits.len() as u32,
                wait_ms: st.options.wait_ms,
            };
            match st.bus.fetch(&st.subscription, options).await {
                Ok(deliveries) => {
                    for (delivery, credit) in deliveries.into_iter().zip(permits) {
                        st.ready.push_back(PushDelivery {
                            delivery,
                            _credit: Credit::Permit { _permit: credit },
                        });
                    }
                }
                Err(e) => {
                    // A missing subscription or a closed bus ends the stream.
                    st.done = matches!(e, BusError::SubscriptionNotFound(_) | BusError::Closed);
                    return Some((Err(e), (st, None)));
                }
            }
        }
    });
    Box::pin(s)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::{AckId, Event, Offset, Partition, StoredEvent};

    fn delivery() -> Delivery {
        Delivery {
            ack_id: AckId {
                topic: "t".into(),
                partition: Partition(0),
                offset: Offset(0),
                seq: 1,
            },
            attempt: 1,
            lease_deadline_ms: 0,
            event: StoredEvent {
                topic: "t".into(),
                partition: Partition(0),
                offset: Offset(0),
                timestamp_ms: 0,
                event: Event::new("Tick", "{}"),
            },
        }
    }

    #[test]
    fn a_built_delivery_returns_its_credit_once_when_dropped() {
        // Proves: `PushDelivery::new`'s release runs when the delivery is
        // dropped, exactly once, and not before.
        let released = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&released);
        let pushed = PushDelivery::new(delivery(), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(pushed.delivery.attempt, 1);
        assert_eq!(released.load(Ordering::SeqCst), 0, "held: not released");
        drop(pushed);
        assert_eq!(released.load(Ordering::SeqCst), 1, "released once on drop");
    }
}
