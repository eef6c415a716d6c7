//! One request, executed on the bus or its event store: a `Request` in,
//! its final `Response` (or an `Error`) out. Push streams are not here
//! (`push.rs`).

use eddy_bus::{Bus, BusError, EventStore};
use eddy_proto::{Request, Response, WireError};

/// Executes `request` on `bus` and returns its final response: the
/// request's own response kind, or `Error` with the bus error's code.
/// `Hello`, `Subscribe`, `Credit` and `Unsubscribe` are handled by the
/// connection and never come here; if one does, it gets an error.
/// A `ReadAll` that waits (`wait_ms`) is a long poll, like a `Fetch`: the
/// request stays in flight until an event passes its filter or the wait
/// is over.
pub(crate) async fn execute<B: Bus + EventStore>(bus: &B, request: Request) -> Response {
    let result: Result<Response, BusError> = match request {
        Request::Ping => Ok(Response::Pong),
        Request::CreateTopic { name, config } => bus
            .create_topic(&name, config)
            .await
            .map(Response::TopicCreated),
        Request::ListTopics => bus.list_topics().await.map(Response::Topics),
        Request::DescribeTopic { name } => bus.describe_topic(&name).await.map(Response::Topic),
        Request::DeleteTopic { name } => bus
            .delete_topic(&name)
            .await
            .map(|()| Response::TopicDeleted),
        Request::Publish { topic, events } => bus
            .publish_batch(&topic, events)
            .await
            .map(Response::Published),
        Request::Read {
            topic,
            partition,
            from,
            max,
        } => bus
            .read(&topic, partition, from, max)
            .await
            .map(Response::ReadBatch),
        Request::CreateSubscription { name, config } => bus
            .create_subscription(&name, config)
            .await
            .map(Response::SubscriptionCreated),
        Request::ListSubscriptions => bus.list_subscriptions().await.map(Response::Subscriptions),
        Request::DescribeSubscription { name } => bus
            .describe_subscription(&name)
            .await
            .map(Response::Subscription),
        Request::DeleteSubscription { name } => bus
            .delete_subscription(&name)
            .await
            .map(|()| Response::SubscriptionDeleted),
        Request::Seek { subscription, to } => {
            bus.seek(&subscription, to).await.map(|()| Response::Sought)
        }
        Request::Fetch {
            subscription,
            options,
        } => bus
            .fetch(&subscription, options)
            .await
            .map(Response::Deliveries),
        Request::Ack { subscription, ids } => bus.ack_all(&subscription, &ids).await.map(|all| {
            Response::Acked(
                all.into_iter()
                    .map(|one| one.map_err(|e| WireError::from(&e)))
                    .collect(),
            )
        }),
        Request::Nack {
            subscription,
            id,
            options,
        } => bus
            .nack(&subscription, &id, options)
            .await
            .map(|()| Response::Nacked),
        Request::Extend { subscription, id } => bus
            .extend(&subscription, &id)
            .await
            .map(|lease_deadline_ms| Response::Extended { lease_deadline_ms }),
        Request::Terminate {
            subscription,
            id,
            reason,
        } => bus
            .terminate(&subscription, &id, &reason)
            .await
            .map(|()| Response::Terminated),
        Request::DeadLetters {
            subscription,
            from,
            max,
        } => bus
            .dead_letters(&subscription, from, max)
            .await
            .map(Response::DeadLetterList),
        Request::DeadLetter { subscription, id } => bus
            .dead_letter(&subscription, id)
            .await
            .map(|d| Response::DeadLetterShown(Box::new(d))),
        Request::Redrive {
            subscription,
            selection,
            target,
        } => bus
            .redrive(&subscription, selection, target)
            .await
            .map(|count| Response::Redriven { count }),
        Request::Purge {
            subscription,
            selection,
        } => bus
            .purge(&subscription, selection)
            .await
            .map(|count| Response::Purged { count }),
        Request::TopicStats { name } => bus.topic_stats(&name).await.map(Response::TopicStatsShown),
        Request::SubscriptionStats { name } => bus
            .subscription_stats(&name)
            .await
            .map(Response::SubscriptionStatsShown),
        Request::Append {
            stream,
            expected,
            events,
        } => bus
            .append(&stream, expected, events)
            .await
            .map(Response::Appended),
        Request::ReadStream {
            stream,
            from,
            direction,
            max,
        } => bus
            .read_stream(&stream, from, direction, max)
            .await
            .map(Response::StreamSlice),
        Request::ReadAll {
            from,
            filter,
            max,
            wait_ms,
        } => bus
            .read_all(from, filter, max, wait_ms)
            .await
            .map(Response::AllSlice),
        Request::StreamInfo { stream } => bus
            .stream_info(&stream)
            .await
            .map(Response::StreamInfoShown),
        Request::SetStreamMetadata { stream, metadata } => bus
            .set_stream_metadata(&stream, metadata)
            .await
            .map(|()| Response::MetadataSet),
        Request::DeleteStream { stream, expected } => bus
            .delete_stream(&stream, expected)
            .await
            .map(|()| Response::StreamDeleted),
        other => Err(BusError::InvalidArgument {
            what: "request",
            reason: format!("{} is not executed as a plain request", other.kind().name()),
        }),
    };
    result.unwrap_or_else(|e| Response::Error(WireError::from(&e)))
}
