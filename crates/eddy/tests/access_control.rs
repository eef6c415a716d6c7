//! Proves access control end to end through the real binary: a server
//! started with tokens in its config file refuses clients without a valid
//! token, refuses each call a token has no grant for (changing nothing),
//! and allows the rest; and a server without tokens refuses to listen
//! beyond loopback, saying how to configure tokens.

mod support;

use std::process::{Child, Command, Stdio};

use eddy_auth::TokenHash;
use eddy_bus::{Bus, BusError, Event, Partition, ReadFrom, TopicConfig};
use eddy_client::{Client, ClientConfig};

const ADMIN: &str = "eddy_test_admin_token";
const PUBLISHER: &str = "eddy_test_publisher_token";

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("eddy.toml");
    let text = format!(
        r#"
data_dir = "{data}"
fsync = "always"

[native]
listen = "127.0.0.1:0"

[http]
listen = "off"

[[tokens]]
name = "ops"
hash = "{admin}"
grants = [{{ topics = ">", allow = ["admin"] }}]

[[tokens]]
name = "orders-service"
hash = "{publisher}"
grants = [{{ topics = "orders.>", allow = ["publish"] }}]
"#,
        data = dir.join("data").display(),
        admin = TokenHash::of(ADMIN),
        publisher = TokenHash::of(PUBLISHER),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `eddy serve --config <file>`; returns it, its native address
/// and its banner.
fn start(config: &std::path::Path) -> (Child, String, String) {
    let served = support::serve(&[std::ffi::OsStr::new("--config"), config.as_os_str()]);
    (served.child, served.native, served.banner)
}

fn with_token(token: &str) -> ClientConfig {
    ClientConfig {
        token: Some(token.to_string()),
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_grants_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr, banner) = start(&config_file(dir.path()));
    assert!(banner.contains("2 token(s) required"), "banner: {banner}");

    for config in [
        ClientConfig::default(),
        with_token("eddy_not_a_known_token"),
    ] {
        match Client::connect(addr.as_str(), config).await {
            Err(BusError::Unauthenticated(_)) => {}
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }

    let admin = Client::connect(addr.as_str(), with_token(ADMIN))
        .await
        .unwrap();
    let publisher = Client::connect(addr.as_str(), with_token(PUBLISHER))
        .await
        .unwrap();

    match publisher
        .create_topic("orders.created", TopicConfig::default())
        .await
    {
        Err(BusError::PermissionDenied {
            principal, action, ..
        }) => assert_eq!((principal.as_str(), action), ("orders-service", "admin")),
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    for t in ["orders.created", "billing.paid"] {
        admin.create_topic(t, TopicConfig::default()).await.unwrap();
    }
    publisher
        .publish("orders.created", Event::new("order.created", "o-1"))
        .await
        .unwrap();
    assert!(matches!(
        publisher
            .publish("billing.paid", Event::new("payment.made", "p-1"))
            .await,
        Err(BusError::PermissionDenied { .. })
    ));
    assert!(matches!(
        publisher
            .read("orders.created", Partition(0), ReadFrom::Beginning, 10)
            .await,
        Err(BusError::PermissionDenied { .. })
    ));
    // The refused publish stored nothing; the allowed one is there.
    let read = |t: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .read(t, Partition(0), ReadFrom::Beginning, 10)
                .await
                .unwrap()
                .events
                .len()
        }
    };
    assert_eq!(read("billing.paid").await, 0);
    assert_eq!(read("orders.created").await, 1);
    // The denied client keeps its connection: it can still do what it may.
    publisher
        .publish("orders.created", Event::new("order.created", "o-2"))
        .await
        .unwrap();
    assert_eq!(read("orders.created").await, 2);

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
}

#[test]
fn without_tokens_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--listen", "0.0.0.0:0", "--http", "off", "--dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run eddy serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without access tokens") && err.contains("eddy token create"),
        "stderr: {err}"
    );
    // Nothing was created: the refusal comes before the broker opens.
    assert!(!dir.path().join("data").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_token_works_with_its_config_entry() {
    // Proves: `eddy token create` prints a token and the `[[tokens]]`
    // entry with its hash; a server configured with that entry accepts
    // the token for what it grants, and `eddy token hash` agrees.
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["token", "create", "--name", "ci", "--allow", "admin:>"])
        .output()
        .expect("run eddy token create");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("eddy_"))
        .expect("the token")
        .to_string();
    let entry = &text[text.find("[[tokens]]").expect("the config entry")..];
    let mut hash = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(hash.stdin.take().unwrap(), "{token}").unwrap();
    let hashed = String::from_utf8(hash.wait_with_output().unwrap().stdout).unwrap();
    assert!(entry.contains(hashed.trim()), "{entry} vs {hashed}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eddy.toml");
    let text = format!(
        "data_dir = \"{}\"\n[native]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"off\"\n{entry}",
        dir.path().join("data").display()
    );
    std::fs::write(&config, text).unwrap();
    let (mut server, addr, _) = start(&config);
    let client = Client::connect(addr.as_str(), with_token(&token))
        .await
        .expect("the created token is accepted");
    client
        .create_topic("made.by.token", TopicConfig::default())
        .await
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
}
