//! Push delivery on top of [`Bus::fetch`], with credit-based flow control:
//! the stream holds one credit per delivery the caller still holds, and
//! fetches only as many as it has credits.

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
    _credit: OwnedSemaphorePermit,
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
                            _credit: credit,
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
