//! The PostgreSQL sink against the machine's PostgreSQL: result rows and
//! the checkpoint are committed together or not at all; a replay resets
//! both. Skipped, saying so, where PostgreSQL is not reachable.

use eddy_runtime::processing::{PostgresSink, ResultRow, SinkError};
use serde::{Deserialize, Serialize};

const CONN: &str = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    positions: Vec<u64>,
    watermark_ms: i64,
}

/// A sink on a table of this test's own, or `None` (skipped) without
/// PostgreSQL.
async fn sink(name: &str) -> Option<PostgresSink> {
    let table = format!("eddy_test_{name}_{}", std::process::id());
    match PostgresSink::connect(CONN, &table, &table).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("skipped: PostgreSQL not reachable ({CONN}): {e}");
            None
        }
    }
}

fn row(key: &str, start: i64, count: u64) -> ResultRow {
    ResultRow {
        key: key.into(),
        window_start_ms: start,
        window_end_ms: start + 60_000,
        value: serde_json::json!({ "count": count }),
    }
}

#[tokio::test]
async fn rows_and_checkpoint_commit_together_and_upsert() {
    let Some(mut s) = sink("commit").await else {
        return;
    };
    assert_eq!(s.checkpoint::<Checkpoint>().await.unwrap(), None);
    let first = Checkpoint {
        positions: vec![10, 20],
        watermark_ms: 59_000,
    };
    s.commit(&[row("paid", 0, 3), row("failed", 0, 1)], &first)
        .await
        .unwrap();
    assert_eq!(s.checkpoint::<Checkpoint>().await.unwrap(), Some(first));
    // The same window again: replaced, not added.
    let second = Checkpoint {
        positions: vec![11, 25],
        watermark_ms: 61_000,
    };
    s.commit(&[row("paid", 0, 4), row("paid", 60_000, 1)], &second)
        .await
        .unwrap();
    let rows = s.rows().await.unwrap();
    assert_eq!(
        rows,
        [
            row("failed", 0, 1),
            row("paid", 0, 4),
            row("paid", 60_000, 1)
        ]
    );
    assert_eq!(s.checkpoint::<Checkpoint>().await.unwrap(), Some(second));
    s.drop_all().await.unwrap();
}

#[tokio::test]
async fn a_failed_commit_changes_neither_rows_nor_checkpoint() {
    let Some(mut s) = sink("atomic").await else {
        return;
    };
    let kept = Checkpoint {
        positions: vec![5],
        watermark_ms: 1,
    };
    s.commit(&[row("a", 0, 1)], &kept).await.unwrap();
    // The rows are fine but the checkpoint cannot be stored (jsonb holds
    // no NUL): the rows of the same commit must not land either.
    let bad = serde_json::json!({ "positions": [9], "note": "\u{0}" });
    let failed = s.commit(&[row("a", 0, 99), row("b", 0, 1)], &bad).await;
    assert!(matches!(failed, Err(SinkError::Postgres(_))), "{failed:?}");
    assert_eq!(s.rows().await.unwrap(), [row("a", 0, 1)]);
    assert_eq!(s.checkpoint::<Checkpoint>().await.unwrap(), Some(kept));
    s.drop_all().await.unwrap();
}

#[tokio::test]
async fn a_replay_deletes_the_windows_it_recomputes_and_resets_the_checkpoint() {
    let Some(mut s) = sink("replay").await else {
        return;
    };
    let at = Checkpoint {
        positions: vec![100],
        watermark_ms: 200_000,
    };
    s.commit(
        &[row("k", 0, 1), row("k", 60_000, 2), row("k", 120_000, 3)],
        &at,
    )
    .await
    .unwrap();
    let from = Checkpoint {
        positions: vec![40],
        watermark_ms: 60_000,
    };
    // Windows starting at t = 60 s or later are recomputed: [60 s, 120 s) and on.
    assert_eq!(s.reset_from(60_000, &from).await.unwrap(), 2);
    assert_eq!(s.rows().await.unwrap(), [row("k", 0, 1)]);
    assert_eq!(s.checkpoint::<Checkpoint>().await.unwrap(), Some(from));
    s.drop_all().await.unwrap();
}

#[tokio::test]
async fn a_table_name_that_is_not_an_identifier_is_refused() {
    let e = PostgresSink::connect(CONN, "p", "results; DROP TABLE x").await;
    assert!(matches!(e, Err(SinkError::BadTable(_))), "{e:?}");
}

#[tokio::test]
async fn keys_and_values_postgresql_refuses_are_stored_all_the_same() {
    let Some(mut s) = sink("odd").await else {
        return;
    };
    let long = "k".repeat(4_000);
    let rows = [
        ResultRow {
            value: serde_json::json!({ "name": "a\u{0}b", "x\u{0}": 1 }),
            ..row("nul\u{0}key", 0, 1)
        },
        row(&long, 0, 2),
    ];
    let at = Checkpoint {
        positions: vec![1],
        watermark_ms: 0,
    };
    s.commit(&rows, &at).await.unwrap();
    let stored = s.rows().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|r| r.key.starts_with("sha256:")));
    assert!(
        stored
            .iter()
            .any(|r| r.value == serde_json::json!({ "name": "a\u{fffd}b", "x\u{fffd}": 1 }))
    );
    s.drop_all().await.unwrap();
}
