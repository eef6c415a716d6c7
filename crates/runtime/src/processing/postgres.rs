//! A PostgreSQL sink whose result rows and the processor's checkpoint are
//! written in **one transaction**: after a crash the table and the
//! checkpoint agree, so a restarted processor neither counts an input
//! twice nor skips one.
//!
//! ```text
//!  BEGIN
//!    INSERT … ON CONFLICT (key, window_start, window_end) DO UPDATE   -- each result row
//!    INSERT INTO eddy_checkpoints … ON CONFLICT (processor) DO UPDATE -- input positions + state
//!  COMMIT
//! ```
//!
//! Results of windowed aggregations go to a table of the caller's naming:
//! `(key text, window_start bigint, window_end bigint, value jsonb,
//! updated_at timestamptz, primary key (key, window_start, window_end))`
//! (times in ms since the epoch). The checkpoint is a JSON document of the
//! caller's (input positions and operator state) in `eddy_checkpoints`.
//! A replay (recomputing from an earlier time) deletes the windows starting
//! from that time on and resets the checkpoint in one transaction.

use tokio_postgres::{Client, Config, NoTls};

/// Records a processor's checkpoint ($1 processor, $2 JSON text).
const CHECKPOINT_UPSERT: &str = "INSERT INTO eddy_checkpoints (processor, checkpoint, updated_at)
     VALUES ($1, $2::text::jsonb, now())
     ON CONFLICT (processor) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, updated_at = now()";

/// Longest key stored as it is (PostgreSQL's btree index refuses entries
/// past about 2.7 kB).
pub const KEY_BYTES_MAX: usize = 1_000;

/// A key as stored: itself, or — past [`KEY_BYTES_MAX`] bytes, or holding
/// a NUL, which PostgreSQL's text refuses — `sha256:<hex>` of it.
pub fn stored_key(key: &str) -> String {
    if key.len() <= KEY_BYTES_MAX && !key.contains('\0') {
        return key.to_string();
    }
    format!("sha256:{}", crate::sha256_hex(&[key.as_bytes()]))
}

/// A value as stored: its JSON, with any NUL character in a string or a
/// field name (which `jsonb` refuses) replaced by U+FFFD.
fn stored_value(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.contains("\\u0000") {
        return text;
    }
    fn clean(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(s.replace('\0', "\u{fffd}")),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.replace('\0', "\u{fffd}"), clean(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    clean(value).to_string()
}

/// Why the sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The table name is not a plain SQL identifier.
    #[error(
        "invalid table name {0:?}: letters, digits and `_`, starting with a letter, at most 63 bytes"
    )]
    BadTable(String),
    /// PostgreSQL refused or failed.
    #[error("postgresql: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A checkpoint could not be encoded or decoded.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] serde_json::Error),
}

/// One result row: a key's value in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The key.
    pub key: String,
    /// The window's start (ms since the epoch).
    pub window_start_ms: i64,
    /// The window's end.
    pub window_end_ms: i64,
    /// The value.
    pub value: serde_json::Value,
}

/// Results and checkpoints of one processor in one PostgreSQL database.
#[derive(Debug)]
pub struct PostgresSink {
    client: Client,
    table: String,
    processor: String,
}

fn check_table(table: &str) -> Result<(), SinkError> {
    let ok = table.len() <= 63
        && table.starts_with(|c: char| c.is_ascii_alphabetic())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SinkError::BadTable(table.to_string()))
    }
}

impl PostgresSink {
    /// Connects (a libpq-style connection string), and creates the result
    /// table and `eddy_checkpoints` if they are missing.
    pub async fn connect(conn: &str, processor: &str, table: &str) -> Result<Self, SinkError> {
        check_table(table)?;
        let config: Config = conn.parse()?;
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "the PostgreSQL connection of a sink ended");
            }
        });
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    key text NOT NULL,
                    window_start bigint NOT NULL,
                    window_end bigint NOT NULL,
                    value jsonb NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (key, window_start, window_end));
                 CREATE TABLE IF NOT EXISTS eddy_checkpoints (
                    processor text PRIMARY KEY,
                    checkpoint jsonb NOT NULL,
                    updated_at timestamptz NOT NULL DEFAULT now());"
            ))
            .await?;
        Ok(PostgresSink {
            client,
            table: table.to_string(),
            processor: processor.to_string(),
        })
    }

    /// The processor's last committed checkpoint, if any.
    pub async fn checkpoint<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, SinkError> {
        let row = self
            .client
            .query_opt(
                "SELECT checkpoint::text FROM eddy_checkpoints WHERE processor = $1",
                &[&self.processor],
            )
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: String = row.get(0);
                Ok(Some(serde_json::from_str(&text)?))
            }
        }
    }

    /// Upserts `rows` and records `checkpoint`, both or neither.
    pub async fn commit<T: serde::Serialize>(
        &mut self,
        rows: &[ResultRow],
        checkpoint: &T,
    ) -> Result<(), SinkError> {
        let checkpoint = serde_json::to_string(checkpoint)?;
        let tx = self.client.transaction().await?;
        if !rows.is_empty() {
            // One statement for every row: arrays unnested server-side.
            let keys: Vec<String> = rows.iter().map(|r| stored_key(&r.key)).collect();
            let starts: Vec<i64> = rows.iter().map(|r| r.window_start_ms).collect();
            let ends: Vec<i64> = rows.iter().map(|r| r.window_end_ms).collect();
            let values: Vec<String> = rows.iter().map(|r| stored_value(&r.value)).collect();
            tx.execute(
                &format!(
                    "INSERT INTO {} (key, window_start, window_end, value, updated_at)
                     SELECT k, s, e, v::jsonb, now()
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS r(k, s, e, v)
                     ON CONFLICT (key, window_start, window_end)
                     DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                    self.table
                ),
                &[&keys, &starts, &ends, &values],
            )
            .await?;
        }
        tx.execute(CHECKPOINT_UPSERT, &[&self.processor, &checkpoint])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// For a replay from `from_ms`: deletes the windows that start at or
    /// after it
    /// and records `checkpoint` (where to read from again), in one
    /// transaction. Returns how many rows were deleted.
    pub async fn reset_from<T: serde::Serialize>(
        &mut self,
        from_ms: i64,
        checkpoint: &T,
    ) -> Result<u64, SinkError> {
        let checkpoint = serde_json::to_string(checkpoint)?;
        let tx = self.client.transaction().await?;
        let deleted = tx
            .execute(
                &format!("DELETE FROM {} WHERE window_start >= $1", self.table),
                &[&from_ms],
            )
            .await?;
        tx.execute(CHECKPOINT_UPSERT, &[&self.processor, &checkpoint])
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Every result row, by key and window (for checks and tests).
    pub async fn rows(&self) -> Result<Vec<ResultRow>, SinkError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT key, window_start, window_end, value::text FROM {} ORDER BY key, window_start, window_end",
                    self.table
                ),
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let value: String = r.get(3);
                Ok(ResultRow {
                    key: r.get(0),
                    window_start_ms: r.get(1),
                    window_end_ms: r.get(2),
                    value: serde_json::from_str(&value)?,
                })
            })
            .collect()
    }

    /// Drops the result table and the processor's checkpoint (tests,
    /// benchmarks).
    pub async fn drop_all(self) -> Result<(), SinkError> {
        self.client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await?;
        self.client
            .execute(
                "DELETE FROM eddy_checkpoints WHERE processor = $1",
                &[&self.processor],
            )
            .await?;
        Ok(())
    }
}
