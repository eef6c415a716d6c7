//! The PostgreSQL rows, as Rust event stores on PostgreSQL commonly do it
//! (tokio-postgres here; sqlx does the same on the wire): one table of
//! events with a unique `(stream, version)` constraint; an append is one
//! `INSERT` of the next version in autocommit, and a unique violation is
//! the conflict; a stream is read with `WHERE stream = $1 ORDER BY
//! version` (served by the constraint's index). Connections come from a
//! pool, each with `SET synchronous_commit = on`, its statements prepared
//! once.
//!
//! The table lives in a schema of the benchmark's own, `eddy_bench`,
//! re-created for every row and dropped at the end.

use std::error::Error;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage, Statement};
use uuid::Uuid;

use super::cpu;
use super::workload::{
    self, AppendTarget, Appenders, Measured, Outcome, Page, ReadTarget, ReadWorkload,
};

/// Most connections of the pool: the appenders share them beyond this.
pub(super) const POOL_MAX: u64 = 64;
const SCHEMA: &str = "eddy_bench";
/// Users tried, in order, when the connection string names none.
const USERS: [&str; 2] = ["postgres", "root"];

const CREATE: &str = "CREATE TABLE eddy_bench.events (
    global_position bigserial PRIMARY KEY,
    stream text NOT NULL,
    version bigint NOT NULL,
    event_id uuid NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, version)
)";
const INSERT: &str = "INSERT INTO eddy_bench.events (stream, version, event_id, type, data) \
                      VALUES ($1, $2, $3, $4, $5)";
const COLUMNS: &str = "global_position, stream, version, event_id, type, data, created_at";
const LAST_VERSION: &str = "SELECT max(version) FROM eddy_bench.events WHERE stream = $1";

/// The server's durability settings and who we are on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub version: String,
    pub user: String,
    pub fsync: String,
    pub synchronous_commit: String,
    pub wal_sync_method: String,
    pub full_page_writes: String,
    /// Whether the user may run `CHECKPOINT` (done before each row).
    pub superuser: bool,
}

impl Settings {
    /// The durability of every PostgreSQL row.
    pub(super) fn durability(&self) -> String {
        format!(
            "synchronous_commit {}, fsync {}",
            self.synchronous_commit, self.fsync
        )
    }

    /// Whether a commit returns only once its WAL is flushed to the local
    /// disk (every `synchronous_commit` value but `off` waits for that).
    pub(super) fn flushes_each_commit(&self) -> bool {
        self.fsync == "on" && self.synchronous_commit != "off"
    }

    /// All of it, for the report.
    pub(super) fn describe(&self) -> String {
        format!(
            "{} as `{}`: fsync = {}, synchronous_commit = {} (set on every connection), \
             wal_sync_method = {}, full_page_writes = {}",
            self.version,
            self.user,
            self.fsync,
            self.synchronous_commit,
            self.wal_sync_method,
            self.full_page_writes
        )
    }
}

/// A reachable server: how to connect, and what it said.
#[derive(Debug, Clone)]
pub(super) struct Server {
    config: Config,
    pub settings: Settings,
}

/// Connects with `config`, the connection driven by a task of the
/// current runtime.
async fn connect_with(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn show(client: &Client, name: &str) -> Result<String> {
    let messages = client.simple_query(&format!("SHOW {name}")).await?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .with_context(|| format!("SHOW {name} returned no row"))
}

/// Finds the server of `conn` (a libpq-style connection string; without a
/// user, `postgres` then `root` are tried) and reads its settings, or says
/// why it cannot be used.
pub(super) async fn probe(conn: &str) -> Result<Server, String> {
    let mut config = Config::from_str(conn).map_err(|e| format!("bad connection string: {e}"))?;
    config
        .connect_timeout(Duration::from_secs(3))
        .application_name("eddy-bench-store");
    let users: Vec<String> = match config.get_user() {
        Some(user) => vec![user.to_string()],
        None => USERS.iter().map(|u| u.to_string()).collect(),
    };
    let mut failures = Vec::new();
    for user in users {
        let mut config = config.clone();
        config.user(&user);
        let client = match connect_with(&config).await {
            Ok(client) => client,
            Err(e) => {
                failures.push(format!("as {user}: {:#}", anyhow::Error::from(e)));
                continue;
            }
        };
        return settings(&client, &user)
            .await
            .map(|settings| Server { config, settings })
            .map_err(|e| format!("reading the server's settings: {e:#}"));
    }
    Err(format!(
        "cannot connect to PostgreSQL ({conn}): {}",
        failures.join("; ")
    ))
}

async fn settings(client: &Client, user: &str) -> Result<Settings> {
    client.batch_execute("SET synchronous_commit = on").await?;
    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    Ok(Settings {
        version: format!("PostgreSQL {}", show(client, "server_version").await?),
        user: user.to_string(),
        fsync: show(client, "fsync").await?,
        synchronous_commit: show(client, "synchronous_commit").await?,
        wal_sync_method: show(client, "wal_sync_method").await?,
        full_page_writes: show(client, "full_page_writes").await?,
        superuser,
    })
}

impl Server {
    async fn connect(&self) -> Result<Client> {
        connect_with(&self.config)
            .await
            .context("connect to PostgreSQL")
    }

    /// A fresh, empty events table; then, if allowed, a `CHECKPOINT`, so
    /// every row starts with no dirty buffers (as `sync` does for files).
    async fn fresh_table(&self) -> Result<Client> {
        let admin = self.connect().await?;
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {SCHEMA}; DROP TABLE IF EXISTS {SCHEMA}.events; {CREATE}"
            ))
            .await
            .context("create the events table")?;
        if self.settings.superuser {
            admin.batch_execute("CHECKPOINT").await?;
        }
        Ok(admin)
    }

    /// Drops the benchmark's schema.
    pub(super) fn drop_schema(&self, runtime: &Runtime) -> Result<()> {
        runtime.block_on(async {
            self.connect()
                .await?
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
                .await
                .context("drop the benchmark's schema")
        })
    }
}

/// A pooled connection: the client and its prepared statements.
#[derive(Debug)]
struct Conn {
    client: Client,
    insert: Statement,
    last_version: Statement,
    read_forward: Statement,
    read_last: Statement,
}

/// A fixed pool, as deadpool or sqlx's would be once warm: a caller waits
/// for a free connection and has it alone until done.
#[derive(Debug)]
struct Pool {
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    async fn open(server: &Server, size: u64) -> Result<Pool> {
        let mut idle = Vec::new();
        for _ in 0..size {
            let client = server.connect().await?;
            client.batch_execute("SET synchronous_commit = on").await?;
            let insert = client.prepare(INSERT).await?;
            let last_version = client.prepare(LAST_VERSION).await?;
            let read_forward = client
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM {SCHEMA}.events \
                     WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"
                ))
                .await?;
            let read_last = client
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM {SCHEMA}.events \
                     WHERE stream = $1 ORDER BY version DESC LIMIT 1"
                ))
                .await?;
            idle.push(Conn {
                client,
                insert,
                last_version,
                read_forward,
                read_last,
            });
        }
        Ok(Pool {
            permits: Semaphore::new(idle.len()),
            idle: Mutex::new(idle),
        })
    }

    async fn get(&self) -> Result<Lease<'_>> {
        let permit = self.permits.acquire().await?;
        let conn = lock(&self.idle)
            .pop()
            .context("a pool permit without a connection")?;
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        })
    }
}

/// A connection taken from the pool, given back when dropped.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn conn(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.idle).push(conn);
        }
    }
}

/// JSON text bound to a `json`/`jsonb` parameter as is (what a driver
/// does with serialized JSON).
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// A `json`/`jsonb` value as its JSON text's bytes (decoded by the caller,
/// like Eddy's event data).
#[derive(Debug)]
struct JsonBytes(Bytes);

impl<'a> FromSql<'a> for JsonBytes {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => text,
                _ => return Err("an unknown jsonb format version".into()),
            }
        } else {
            raw
        };
        Ok(JsonBytes(Bytes::copy_from_slice(text)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

/// A `timestamptz`: microseconds since 2000-01-01 UTC.
#[derive(Debug)]
struct Micros(i64);

impl<'a> FromSql<'a> for Micros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Micros(i64::from_be_bytes(raw.try_into()?)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

/// A row of the events table, as a reader gets it (the same fields as
/// Eddy's `RecordedEvent`).
#[derive(Debug)]
#[allow(dead_code)] // read, as an application would, and dropped
struct Recorded {
    position: i64,
    stream: String,
    version: u64,
    id: Uuid,
    ty: String,
    data: Bytes,
    timestamp_ms: i64,
}

/// Milliseconds from the Unix epoch to 2000-01-01.
const PG_EPOCH_MS: i64 = 946_684_800_000;

impl Recorded {
    fn from_row(row: &tokio_postgres::Row) -> Result<Recorded> {
        let version: i64 = row.try_get(2)?;
        Ok(Recorded {
            position: row.try_get(0)?,
            stream: row.try_get(1)?,
            version: u64::try_from(version).context("a negative version")?,
            id: row.try_get(3)?,
            ty: row.try_get(4)?,
            data: row.try_get::<_, JsonBytes>(5)?.0,
            timestamp_ms: row.try_get::<_, Micros>(6)?.0 / 1000 + PG_EPOCH_MS,
        })
    }
}

/// The store, as the workloads see it.
#[derive(Debug, Clone)]
struct Postgres(Arc<Pool>);

impl AppendTarget for Postgres {
    async fn append(
        &self,
        stream: &str,
        last: Option<u64>,
        ty: &'static str,
        data: String,
    ) -> Result<Outcome> {
        let lease = self.0.get().await?;
        let conn = lease.conn();
        let version = workload::next_version(last);
        let params: [&(dyn ToSql + Sync); 5] = [
            &stream,
            &(version as i64),
            &Uuid::now_v7(),
            &ty,
            &JsonText(&data),
        ];
        match conn.client.execute(&conn.insert, &params).await {
            Ok(_) => Ok(Outcome::Appended(version)),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Outcome::Conflict),
            Err(e) => Err(e).with_context(|| format!("insert into {stream}")),
        }
    }

    async fn last_version(&self, stream: &str) -> Result<Option<u64>> {
        let lease = self.0.get().await?;
        let conn = lease.conn();
        let row = conn
            .client
            .query_one(&conn.last_version, &[&stream])
            .await?;
        let last: Option<i64> = row.try_get(0)?;
        Ok(last.map(|v| v as u64))
    }
}

impl ReadTarget for Postgres {
    async fn read_forward(&self, stream: &str, from: u64, max: u32) -> Result<Page> {
        let lease = self.0.get().await?;
        let conn = lease.conn();
        // One more than asked, to know whether the stream goes on.
        let rows = conn
            .client
            .query(
                &conn.read_forward,
                &[&stream, &(from as i64), &(i64::from(max) + 1)],
            )
            .await?;
        let mut events: Vec<Recorded> =
            rows.iter().map(Recorded::from_row).collect::<Result<_>>()?;
        let next = if events.len() > max as usize {
            events.pop().map(|e| e.version)
        } else {
            None
        };
        Ok(Page {
            events: events.into_iter().map(|e| (e.version, e.data)).collect(),
            next,
        })
    }

    async fn read_last(&self, stream: &str) -> Result<Option<(u64, Bytes)>> {
        let lease = self.0.get().await?;
        let conn = lease.conn();
        let rows = conn.client.query(&conn.read_last, &[&stream]).await?;
        match rows.first() {
            Some(row) => {
                let e = Recorded::from_row(row)?;
                Ok(Some((e.version, e.data)))
            }
            None => Ok(None),
        }
    }
}

/// The pool's size for `tasks` appenders.
pub(super) fn pool_size(tasks: u64) -> u64 {
    tasks.min(POOL_MAX)
}

/// One run of the appenders on a fresh table.
pub(super) fn appends(runtime: &Runtime, server: &Server, plan: Appenders) -> Result<Measured> {
    runtime.block_on(async {
        let _admin = server.fresh_table().await?;
        let pool = Arc::new(Pool::open(server, pool_size(plan.tasks)).await?);
        // The backends live as long as the pool: their CPU time is read
        // before they exit.
        let before = cpu::used(&["postgres"]);
        let measured = workload::run_appends(Postgres(Arc::clone(&pool)), plan).await?;
        let after = cpu::used(&["postgres"]);
        let cpu = before.zip(after).map(|(b, a)| a.saturating_sub(b));
        Ok(Measured { cpu, ..measured })
    })
}

/// The reads and loads, each for `run_time`, on the read data set written
/// to a fresh table in one transaction (not timed), then analyzed.
pub(super) fn reads(
    runtime: &Runtime,
    server: &Server,
    run_time: Duration,
) -> Result<Vec<(ReadWorkload, Measured)>> {
    runtime.block_on(async {
        let admin = server.fresh_table().await?;
        let (setup, expected) = workload::read_setup();
        let pool = Arc::new(Pool::open(server, 1).await?);
        let store = Postgres(Arc::clone(&pool));
        pool.get().await?.conn().client.batch_execute("BEGIN").await?;
        workload::write_setup(&store, setup).await?;
        pool.get().await?.conn().client.batch_execute("COMMIT").await?;
        admin
            .batch_execute(&format!("ANALYZE {SCHEMA}.events"))
            .await?;
        if server.settings.superuser {
            admin.batch_execute("CHECKPOINT").await?;
        }
        let plan = pool
            .get()
            .await?
            .conn()
            .client
            .simple_query(&format!(
                "EXPLAIN SELECT {COLUMNS} FROM {SCHEMA}.events WHERE stream = 'x' AND version >= 0 ORDER BY version LIMIT 1001"
            ))
            .await?;
        let uses_index = plan.iter().any(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).is_some_and(|l| l.contains("Index")),
            _ => false,
        });
        if !uses_index {
            bail!("the stream read does not use the (stream, version) index");
        }
        workload::run_all_reads(&store, expected, run_time).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_absent_server_is_a_reason_to_skip() {
        // Port 1 on loopback: nothing listens there.
        let why = probe("host=127.0.0.1 port=1 dbname=test")
            .await
            .unwrap_err();
        assert!(why.starts_with("cannot connect to PostgreSQL"), "{why}");
        assert!(
            why.contains("as postgres") && why.contains("as root"),
            "{why}"
        );
        let why = probe("host=127.0.0.1 port=1 user=me").await.unwrap_err();
        assert!(why.contains("as me") && !why.contains("as root"), "{why}");
    }

    #[test]
    fn durability_is_equal_only_when_each_commit_is_flushed() {
        let mut s = Settings {
            version: "PostgreSQL 15".into(),
            user: "postgres".into(),
            fsync: "on".into(),
            synchronous_commit: "on".into(),
            wal_sync_method: "fdatasync".into(),
            full_page_writes: "on".into(),
            superuser: true,
        };
        assert!(s.flushes_each_commit());
        assert_eq!(s.durability(), "synchronous_commit on, fsync on");
        s.fsync = "off".into();
        assert!(!s.flushes_each_commit());
        s.fsync = "on".into();
        s.synchronous_commit = "off".into();
        assert!(!s.flushes_each_commit());
    }
}
