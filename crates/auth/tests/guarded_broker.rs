//! Proves the guard in front of a real broker: each permission allows
//! what it names and nothing else, a refused call changes nothing, lists
//! show only what a token has grants on, and a subscription recreated
//! under a remembered filter leaks no event.

use eddy_auth::{Access, Grant, Permission, TokenHash, Tokens};
use eddy_broker::{Broker, BrokerConfig};
use eddy_bus::{
    Bus, BusError, DeadLetterSelection, Event, FetchOptions, Partition, ReadFrom, RedriveTarget,
    StartAt, SubscriptionConfig, TopicConfig,
};

const PUBLISHER: &str = "eddy_publisher";
const CONSUMER: &str = "eddy_consumer";
const ADMIN: &str = "eddy_admin";

fn tokens(broker: Broker) -> Tokens<Broker> {
    Tokens::new(broker)
        .with(
            "publisher",
            TokenHash::of(PUBLISHER),
            vec![Grant::new("orders.>", &[Permission::Publish]).unwrap()],
        )
        .unwrap()
        .with(
            "consumer",
            TokenHash::of(CONSUMER),
            vec![Grant::new("orders.>", &[Permission::Subscribe]).unwrap()],
        )
        .unwrap()
        .with(
            "admin",
            TokenHash::of(ADMIN),
            vec![Grant::new(">", &[Permission::Admin]).unwrap()],
        )
        .unwrap()
}

fn denied(result: Result<impl std::fmt::Debug, BusError>, who: &str, action: &str) {
    match result {
        Err(BusError::PermissionDenied {
            principal,
            action: a,
            ..
        }) => assert_eq!((principal.as_str(), a), (who, action)),
        other => panic!("expected {who} to be denied {action}, got {other:?}"),
    }
}

fn now() -> FetchOptions {
    FetchOptions {
        max: 10,
        wait_ms: 0,
    }
}

#[tokio::test]
async fn each_permission_allows_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
    let tokens = tokens(broker.clone());

    assert!(matches!(
        tokens.bus_for(None),
        Err(BusError::Unauthenticated(_))
    ));
    assert!(matches!(
        tokens.bus_for(Some("eddy_guess")),
        Err(BusError::Unauthenticated(_))
    ));
    let long = "x".repeat(10_000);
    assert!(matches!(
        tokens.bus_for(Some(&long)),
        Err(BusError::Unauthenticated(_))
    ));

    let publisher = tokens.bus_for(Some(PUBLISHER)).unwrap();
    let consumer = tokens.bus_for(Some(CONSUMER)).unwrap();
    let admin = tokens.bus_for(Some(ADMIN)).unwrap();

    // Topics are admin's: the others are refused and nothing is created.
    denied(
        publisher
            .create_topic("orders.created", TopicConfig::default())
            .await,
        "publisher",
        "admin",
    );
    assert!(
        broker
            .list_topics()
            .await
            .unwrap()
            .iter()
            .all(|t| t.name.starts_with('$'))
    );
    for t in ["orders.created", "billing.paid"] {
        admin.create_topic(t, TopicConfig::default()).await.unwrap();
    }

    // Publish: on its pattern only; a refused publish stores nothing.
    publisher
        .publish("orders.created", Event::new("order.created", "o-1"))
        .await
        .unwrap();
    denied(
        publisher
            .publish("billing.paid", Event::new("paid", "p-1"))
            .await,
        "publisher",
        "publish",
    );
    let billing = broker
        .read("billing.paid", Partition(0), ReadFrom::Beginning, 10)
        .await
        .unwrap();
    assert!(billing.events.is_empty());
    denied(
        consumer
            .publish("orders.created", Event::new("x", "x"))
            .await,
        "consumer",
        "publish",
    );

    // Reading: subscribe only.
    assert_eq!(
        consumer
            .read("orders.created", Partition(0), ReadFrom::Beginning, 10)
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    denied(
        publisher
            .read("orders.created", Partition(0), ReadFrom::Beginning, 10)
            .await,
        "publisher",
        "subscribe",
    );

    // Lists show what the token has a grant on.
    let names: Vec<String> = consumer
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["orders.created"]);
    assert_eq!(admin.list_topics().await.unwrap().len(), 2);

    // Subscriptions: a consumer may create one within its grants only.
    let config = SubscriptionConfig::new("orders.>").start_at(StartAt::Earliest);
    consumer
        .create_subscription("shipping", config)
        .await
        .unwrap();
    denied(
        consumer
            .create_subscription("everything", SubscriptionConfig::new(">"))
            .await,
        "consumer",
        "subscribe",
    );
    assert!(broker.describe_subscription("everything").await.is_err());
    denied(
        publisher.fetch("shipping", now()).await,
        "publisher",
        "subscribe",
    );
    let got = consumer.fetch("shipping", now()).await.unwrap();
    assert_eq!(got.len(), 1);
    denied(
        publisher.ack("shipping", &got[0].ack_id).await,
        "publisher",
        "subscribe",
    );
    consumer
        .terminate("shipping", &got[0].ack_id, "bad order")
        .await
        .unwrap();

    // Dead letters: a consumer may look; redrive, purge, seek and delete
    // are admin's.
    assert_eq!(
        consumer
            .dead_letters("shipping", 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    denied(
        consumer
            .redrive(
                "shipping",
                DeadLetterSelection::All,
                RedriveTarget::Subscription,
            )
            .await,
        "consumer",
        "admin",
    );
    denied(
        consumer.purge("shipping", DeadLetterSelection::All).await,
        "consumer",
        "admin",
    );
    denied(
        consumer.seek("shipping", StartAt::Earliest).await,
        "consumer",
        "admin",
    );
    denied(
        consumer.delete_subscription("shipping").await,
        "consumer",
        "admin",
    );
    assert_eq!(
        broker.dead_letters("shipping", 0, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        admin
            .redrive(
                "shipping",
                DeadLetterSelection::All,
                RedriveTarget::Subscription
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(consumer.fetch("shipping", now()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_recreated_subscription_leaks_nothing_through_a_remembered_filter() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), BrokerConfig::default()).unwrap();
    let tokens = tokens(broker.clone());
    let consumer = tokens.bus_for(Some(CONSUMER)).unwrap();
    let admin = tokens.bus_for(Some(ADMIN)).unwrap();
    for t in ["orders.created", "billing.paid"] {
        admin.create_topic(t, TopicConfig::default()).await.unwrap();
    }
    let earliest = |f: &str| SubscriptionConfig::new(f).start_at(StartAt::Earliest);
    admin
        .create_subscription("s", earliest("orders.>"))
        .await
        .unwrap();
    // The consumer's guard remembers the filter `orders.>`.
    assert!(consumer.fetch("s", now()).await.unwrap().is_empty());

    // Behind its back, `s` now selects billing.
    admin.delete_subscription("s").await.unwrap();
    admin
        .create_subscription("s", earliest("billing.>"))
        .await
        .unwrap();
    admin
        .publish("billing.paid", Event::new("paid", "secret"))
        .await
        .unwrap();

    denied(consumer.fetch("s", now()).await, "consumer", "subscribe");
    denied(consumer.fetch("s", now()).await, "consumer", "subscribe");
    // The event went back to the subscription, for those allowed to see it.
    let got = admin.fetch("s", now()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].event.event.data[..], b"secret");
}
