//! Proves the guard in front of a real broker's event store: a stream is
//! guarded as its `es.<category>` topic (append needs publish, reads
//! subscribe, settings and delete admin), streams without a category and
//! system streams need a grant covering `es.>`, a `$all` read is narrowed
//! only by a category filter, and a refused call changes nothing.

use eddy_auth::{Access, Grant, Permission, TokenHash, Tokens};
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{
    AllFilter, BusError, Direction, Event, EventStore, ExpectedVersion, StreamFrom, StreamMetadata,
};

const WRITER: &str = "eddy_writer";
const READER: &str = "eddy_reader";
const STORE_ADMIN: &str = "eddy_store_admin";
const ROOT: &str = "eddy_root";
const ONE_LEVEL: &str = "eddy_one_level";

fn tokens(broker: Broker) -> Tokens<Broker> {
    let grant = |p: &str, a: &[Permission]| vec![Grant::new(p, a).unwrap()];
    Tokens::new(broker)
        .with(
            "writer",
            TokenHash::of(WRITER),
            grant("es.order", &[Permission::Publish]),
        )
        .unwrap()
        .with(
            "reader",
            TokenHash::of(READER),
            grant("es.order", &[Permission::Subscribe]),
        )
        .unwrap()
        .with(
            "store-admin",
            TokenHash::of(STORE_ADMIN),
            grant("es.>", &[Permission::Admin]),
        )
        .unwrap()
        .with(
            "root",
            TokenHash::of(ROOT),
            grant(">", &[Permission::Admin]),
        )
        .unwrap()
        .with(
            "one-level",
            TokenHash::of(ONE_LEVEL),
            grant("es.*", &[Permission::Subscribe, Permission::Publish]),
        )
        .unwrap()
}

#[track_caller]
fn denied<T: std::fmt::Debug>(result: Result<T, BusError>, who: &str, action: &str, on: &str) {
    match result {
        Err(BusError::PermissionDenied {
            principal,
            action: a,
            resource,
        }) => assert_eq!(
            (principal.as_str(), a, resource.as_str()),
            (who, action, on)
        ),
        other => panic!("expected {who} to be denied {action} on {on}, got {other:?}"),
    }
}

fn ev(ty: &str) -> Vec<Event> {
    vec![Event::new(ty, "{}")]
}

#[tokio::test]
async fn streams_are_guarded_as_their_category_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
    let tokens = tokens(broker.clone());
    let writer = tokens.bus_for(Some(WRITER)).unwrap();
    let reader = tokens.bus_for(Some(READER)).unwrap();
    let admin = tokens.bus_for(Some(STORE_ADMIN)).unwrap();
    let any = ExpectedVersion::Any;

    // Publish on es.order: append to order-*, nothing else.
    let r = writer.append("order-1", any, ev("OrderPlaced")).await;
    assert_eq!(r.unwrap().first_version, 0);
    denied(
        writer.append("user-1", any, ev("UserJoined")).await,
        "writer",
        "publish",
        "es.user",
    );
    denied(
        writer.append("orders", any, ev("X")).await,
        "writer",
        "publish",
        "es.>",
    );
    denied(
        writer.append("$snap-order-1", any, ev("Snapshot")).await,
        "writer",
        "publish",
        "es.>",
    );
    denied(
        writer
            .read_stream("order-1", StreamFrom::Start, Direction::Forward, 10)
            .await,
        "writer",
        "subscribe",
        "es.order",
    );
    denied(
        writer.stream_info("order-1").await,
        "writer",
        "subscribe",
        "es.order",
    );

    // Subscribe on es.order: read order-* and $all by its category only.
    let slice = reader
        .read_stream("order-1", StreamFrom::Start, Direction::Forward, 10)
        .await
        .unwrap();
    assert_eq!(slice.events.len(), 1);
    assert_eq!(
        reader.stream_info("order-1").await.unwrap().last_version,
        Some(0)
    );
    let orders = reader
        .read_all(0, AllFilter::Category("order".into()), 10, 0)
        .await
        .unwrap();
    assert_eq!(orders.events.len(), 1);
    for filter in [
        AllFilter::All,
        AllFilter::EventType("OrderPlaced".into()),
        AllFilter::StreamPrefix("order-".into()),
        AllFilter::Category("$snap".into()),
    ] {
        denied(
            reader.read_all(0, filter, 10, 0).await,
            "reader",
            "subscribe",
            "es.>",
        );
    }
    denied(
        reader
            .read_all(0, AllFilter::Category("user".into()), 10, 0)
            .await,
        "reader",
        "subscribe",
        "es.user",
    );
    denied(
        reader.append("order-1", any, ev("X")).await,
        "reader",
        "publish",
        "es.order",
    );
    denied(
        reader
            .set_stream_metadata("order-1", StreamMetadata::default())
            .await,
        "reader",
        "admin",
        "es.order",
    );
    denied(
        reader.delete_stream("order-1", any).await,
        "reader",
        "admin",
        "es.order",
    );

    // Admin on es.>: everything, system streams included.
    admin
        .append("$snap-order-1", any, ev("Snapshot"))
        .await
        .unwrap();
    admin.append("orders", any, ev("X")).await.unwrap();
    assert_eq!(
        admin
            .read_all(0, AllFilter::StreamPrefix("$".into()), 10, 0)
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    let keep_two = StreamMetadata {
        max_count: Some(2),
        ..StreamMetadata::default()
    };
    admin
        .set_stream_metadata("order-1", keep_two)
        .await
        .unwrap();
    admin.delete_stream("orders", any).await.unwrap();

    // `>` covers es.> too; `es.*` covers one category but not es.>.
    let root = tokens.bus_for(Some(ROOT)).unwrap();
    root.read_all(0, AllFilter::All, 10, 0).await.unwrap();
    root.stream_info("$snap-order-1").await.unwrap();
    let one = tokens.bus_for(Some(ONE_LEVEL)).unwrap();
    one.append("cart-1", any, ev("CartOpened")).await.unwrap();
    one.read_all(0, AllFilter::Category("cart".into()), 10, 0)
        .await
        .unwrap();
    denied(
        one.read_all(0, AllFilter::All, 10, 0).await,
        "one-level",
        "subscribe",
        "es.>",
    );
    denied(
        one.append("shop.cart-1", any, ev("X")).await,
        "one-level",
        "publish",
        "es.shop.cart",
    );
    denied(
        one.stream_info("$snap-cart-1").await,
        "one-level",
        "subscribe",
        "es.>",
    );
}

#[tokio::test]
async fn refused_calls_change_nothing_and_bad_names_are_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
    let tokens = tokens(broker.clone());
    let reader = tokens.bus_for(Some(READER)).unwrap();
    let writer = tokens.bus_for(Some(WRITER)).unwrap();
    let any = ExpectedVersion::Any;
    writer.append("order-1", any, ev("A")).await.unwrap();

    assert!(reader.append("order-1", any, ev("B")).await.is_err());
    assert!(reader.delete_stream("order-1", any).await.is_err());
    let keep_none = StreamMetadata {
        truncate_before: Some(1),
        ..StreamMetadata::default()
    };
    assert!(
        reader
            .set_stream_metadata("order-1", keep_none)
            .await
            .is_err()
    );
    let info = broker.stream_info("order-1").await.unwrap();
    assert_eq!(info.last_version, Some(0));
    assert_eq!(info.metadata, StreamMetadata::default());
    assert!(!info.deleted);

    // A bad name is InvalidName whoever asks, before any permission.
    for bad in ["order 1", "", "a..b-1"] {
        let r = writer.append(bad, any, ev("A")).await;
        assert!(
            matches!(r, Err(BusError::InvalidName { .. })),
            "{bad:?}: {r:?}"
        );
        let r = reader.stream_info(bad).await;
        assert!(
            matches!(r, Err(BusError::InvalidName { .. })),
            "{bad:?}: {r:?}"
        );
    }
}
