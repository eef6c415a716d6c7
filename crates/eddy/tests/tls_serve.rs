//! Proves `eddy serve --tls-cert --tls-key` end to end through the real
//! binary: a client trusting the certificate publishes and reads over TLS;
//! a client that does not trust it, and a plain-TCP client, are refused
//! without hanging; the server keeps serving.

mod support;

use std::process::{Child, Command};

use eddy_bus::{Bus, BusError, Event, Partition, ReadFrom, TopicConfig};
use eddy_client::{Client, ClientConfig, ClientTls};

fn start(
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (Child, String, String) {
    let mut args: Vec<std::ffi::OsString> = ["--listen", "127.0.0.1:0", "--http", "off"]
        .into_iter()
        .map(Into::into)
        .collect();
    args.extend([
        "--dir".into(),
        dir.join("data").into(),
        "--tls-cert".into(),
        cert.into(),
        "--tls-key".into(),
        key.into(),
    ]);
    let served = support::serve(&args);
    (served.child, served.native, served.banner)
}

fn tls(pem: &str) -> ClientConfig {
    ClientConfig {
        tls: Some(
            ClientTls::from_pem(pem.as_bytes())
                .unwrap()
                .with_server_name("localhost"),
        ),
        connect_timeout_ms: 5_000,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_tls_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let (mut server, addr, banner) = start(dir.path(), &cert, &key);
    assert!(banner.contains("tls://"), "banner: {banner}");

    let client = Client::connect(addr.as_str(), tls(&made.cert.pem()))
        .await
        .expect("connect over TLS");
    client
        .create_topic("secure", TopicConfig::default())
        .await
        .unwrap();
    client
        .publish("secure", Event::new("sealed", "over tls"))
        .await
        .unwrap();

    // A certificate it does not trust: refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    match Client::connect(addr.as_str(), tls(&other.cert.pem())).await {
        Err(BusError::Unavailable(why)) => assert!(why.contains("TLS"), "{why}"),
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // Plain TCP to the TLS port: refused, not hung.
    let plain = ClientConfig {
        connect_timeout_ms: 5_000,
        ..ClientConfig::default()
    };
    assert!(Client::connect(addr.as_str(), plain).await.is_err());

    // The trusted client is still served.
    let read = client
        .read("secure", Partition(0), ReadFrom::Beginning, 10)
        .await
        .unwrap();
    assert_eq!(&read.events[0].event.data[..], b"over tls");
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
}
