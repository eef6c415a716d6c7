//! `Guarded` as an event store: each stream is guarded as the bus topic
//! its events are published to (see [`Guarded`] for the rule).

use eddy_bus::store::{STORE_TOPIC_PREFIX, check_stream_name, store_topic};
use eddy_bus::{
    AllFilter, AllSlice, AppendResult, Bus, Direction, Event, EventStore, ExpectedVersion, Result,
    StreamFrom, StreamInfo, StreamMetadata, StreamSlice,
};

use crate::grant::Permission;
use crate::guard::Guarded;

/// What a store call's permission is checked on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    /// One bus topic, `es.<category>`.
    Topic(String),
    /// Every store topic: the pattern `es.>` must be covered.
    AllStreams,
}

/// The pattern standing for every store topic.
fn all_streams_pattern() -> String {
    format!("{STORE_TOPIC_PREFIX}>")
}

/// The resource of a stream (whose name is valid).
fn stream_resource(stream: &str) -> Resource {
    store_topic(stream).map_or(Resource::AllStreams, Resource::Topic)
}

/// The resource of a `$all` read through `filter`: only a category that
/// streams can have narrows it to one topic.
fn filter_resource(filter: &AllFilter) -> Resource {
    match filter {
        AllFilter::Category(c) if !c.contains('-') => {
            let probe = format!("{c}-0");
            match check_stream_name(&probe) {
                Ok(()) => stream_resource(&probe),
                Err(_) => Resource::AllStreams,
            }
        }
        _ => Resource::AllStreams,
    }
}

impl<B> Guarded<B> {
    fn check_resource(&self, permission: Permission, resource: &Resource) -> Result<()> {
        match resource {
            Resource::Topic(topic) => self.principal().check(permission, topic),
            Resource::AllStreams => self
                .principal()
                .check_all(permission, &all_streams_pattern()),
        }
    }

    /// `Ok` if the name is valid and `permission` is granted on its
    /// resource.
    fn check_stream(&self, permission: Permission, stream: &str) -> Result<()> {
        check_stream_name(stream)?;
        self.check_resource(permission, &stream_resource(stream))
    }
}

impl<B: Bus + EventStore + Clone> EventStore for Guarded<B> {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<AppendResult> {
        self.check_stream(Permission::Publish, stream)?;
        self.bus.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: u32,
    ) -> Result<StreamSlice> {
        self.check_stream(Permission::Subscribe, stream)?;
        self.bus.read_stream(stream, from, direction, max).await
    }

    async fn read_all(
        &self,
        from: u64,
        filter: AllFilter,
        max: u32,
        wait_ms: u64,
    ) -> Result<AllSlice> {
        self.check_resource(Permission::Subscribe, &filter_resource(&filter))?;
        self.bus.read_all(from, filter, max, wait_ms).await
    }

    async fn stream_info(&self, stream: &str) -> Result<StreamInfo> {
        self.check_stream(Permission::Subscribe, stream)?;
        self.bus.stream_info(stream).await
    }

    async fn set_stream_metadata(&self, stream: &str, metadata: StreamMetadata) -> Result<()> {
        self.check_stream(Permission::Admin, stream)?;
        self.bus.set_stream_metadata(stream, metadata).await
    }

    async fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<()> {
        self.check_stream(Permission::Admin, stream)?;
        self.bus.delete_stream(stream, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_of_streams_and_filters() {
        // Proves: a stream with a category is its `es.<category>` topic;
        // streams without one, system streams, and every filter but a
        // plain category stand for all store topics.
        let topic = |t: &str| Resource::Topic(t.to_string());
        assert_eq!(stream_resource("order-1"), topic("es.order"));
        assert_eq!(stream_resource("shop.order-1-2"), topic("es.shop.order"));
        assert_eq!(stream_resource("orders"), Resource::AllStreams);
        assert_eq!(stream_resource("$snap-order-1"), Resource::AllStreams);
        let category = |c: &str| filter_resource(&AllFilter::Category(c.into()));
        assert_eq!(category("order"), topic("es.order"));
        assert_eq!(category("shop.order"), topic("es.shop.order"));
        for wide in ["$snap", "a-b", "", "a b", "a.>", "*"] {
            assert_eq!(category(wide), Resource::AllStreams, "{wide:?}");
        }
        for f in [
            AllFilter::All,
            AllFilter::EventType("OrderPlaced".into()),
            AllFilter::StreamPrefix("order-".into()),
        ] {
            assert_eq!(filter_resource(&f), Resource::AllStreams, "{f:?}");
        }
    }
}
