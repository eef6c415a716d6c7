//! The shop's analytics processor: order counts by status and amounts per
//! minute of event time, from `shop.orders` and `shop.payments`, kept in
//! PostgreSQL (`--postgres`) or in the processor's embedded store.
//!
//! ```text
//!  shop.orders   OrderPlaced → placed, OrderShipped → shipped, OrderFailed → failed ─┐
//!  shop.payments PaymentCompleted → paid (its amount is the revenue) ─────────────────┴▶ 1-minute windows by status
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use eddy_bus::Bus;
use eddy_runtime::processing::{
    PostgresSink, Processor, ProcessorBuilder, Record, ResultRow, RunningProcessor, Sink,
    WindowSpec, embedded_results,
};
use serde::{Deserialize, Serialize};

use super::shop::{ORDERS, PAYMENTS};

/// The processor's name (its checkpoint's, in PostgreSQL).
pub const NAME: &str = "shop-analytics";
/// Its result table in PostgreSQL.
pub const TABLE: &str = "shop_analytics";
/// One window per minute of event time …
const WINDOW_MS: u64 = 60_000;
/// … held open 10 s after its end for stragglers,
const LATENESS_MS: u64 = 10_000;
/// … with events up to 5 s out of order counted as on time.
const OUT_OF_ORDER_MS: u64 = 5_000;

/// One status in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minute {
    /// Orders that reached the status.
    pub orders: u64,
    /// Their amounts (for `paid`: the revenue).
    pub amount_cents: u64,
}

/// The status an event of the shop puts an order in, if any.
fn status(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "OrderPlaced" => "placed",
        "PaymentCompleted" => "paid",
        "OrderShipped" => "shipped",
        "OrderFailed" => "failed",
        _ => return None,
    })
}

/// The analytics processor, named `name`.
pub fn processor(name: &str) -> Result<ProcessorBuilder<Minute>> {
    Ok(Processor::builder(name)
        .input(ORDERS)
        .input(PAYMENTS)
        .flat_map(|mut r: Record| match status(&r.ty) {
            Some(s) => {
                r.key = s.to_string();
                vec![r]
            }
            None => Vec::new(),
        })
        .window(WindowSpec::tumbling(WINDOW_MS)?, LATENESS_MS)
        .max_out_of_order_ms(OUT_OF_ORDER_MS)
        .aggregate(|m: &mut Minute, r: &Record| {
            m.orders += 1;
            m.amount_cents += r.value()["amount_cents"].as_u64().unwrap_or(0);
        }))
}

/// Where the results go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The processor's state folder.
    pub state: PathBuf,
    /// PostgreSQL (connection string, table), or the embedded store.
    pub postgres: Option<(String, String)>,
}

impl Target {
    /// The analytics processor `name` of the demo in `dir`, writing to
    /// PostgreSQL (connection string, table) or to its embedded store. The
    /// two keep their state apart: a checkpoint is only good with the
    /// results it was committed with.
    pub fn new(dir: &Path, name: &str, postgres: Option<(String, String)>) -> Target {
        let folder = match postgres {
            Some(_) => format!("{name}.postgres"),
            None => name.to_string(),
        };
        Target {
            state: dir.join("processors").join(folder),
            postgres,
        }
    }

    fn sink(&self) -> Sink {
        match &self.postgres {
            Some((conn, table)) => Sink::Postgres {
                conn: conn.clone(),
                table: table.clone(),
            },
            None => Sink::Embedded,
        }
    }

    /// Where the results are, in words.
    pub fn describe(&self) -> String {
        match &self.postgres {
            Some((_, table)) => format!("in the PostgreSQL table {table}"),
            None => format!(
                "in the processor's embedded store in {} (no --postgres given)",
                self.state.display()
            ),
        }
    }

    /// Starts `processor` on `bus`.
    pub async fn start<B: Bus + Clone>(
        &self,
        bus: B,
        processor: ProcessorBuilder<Minute>,
    ) -> Result<RunningProcessor<Minute>> {
        let p = processor.build()?;
        p.start(bus, &self.state, self.sink())
            .await
            .with_context(|| format!("start the analytics processor ({})", self.describe()))
    }

    /// Every result row.
    pub async fn rows(&self) -> Result<Vec<ResultRow>> {
        match &self.postgres {
            Some((conn, table)) => Ok(PostgresSink::connect(conn, NAME, table)
                .await?
                .rows()
                .await?),
            None => Ok(embedded_results(&self.state)?),
        }
    }
}

/// The results as a table: a line per minute, a column per status.
pub fn render(rows: &[ResultRow], last_minutes: usize) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let mut minutes: BTreeMap<i64, BTreeMap<&str, Minute>> = BTreeMap::new();
    for r in rows {
        let m: Minute = serde_json::from_value(r.value.clone()).unwrap_or_default();
        minutes
            .entry(r.window_start_ms)
            .or_default()
            .insert(r.key.as_str(), m);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<21} {:>7} {:>7} {:>8} {:>7} {:>12}",
        "minute", "placed", "paid", "shipped", "failed", "revenue"
    );
    let skip = minutes.len().saturating_sub(last_minutes);
    if skip > 0 {
        let _ = writeln!(out, "  … {skip} earlier minutes");
    }
    for (start, by) in minutes.iter().skip(skip) {
        let n = |s: &str| by.get(s).map_or(0, |m| m.orders);
        let revenue = by.get("paid").map_or(0, |m| m.amount_cents);
        let _ = writeln!(
            out,
            "  {:<21} {:>7} {:>7} {:>8} {:>7} {:>12}",
            crate::utc::format_minutes(*start),
            n("placed"),
            n("paid"),
            n("shipped"),
            n("failed"),
            format!("{}.{:02}", revenue / 100, revenue % 100)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_minute_with_revenue_from_payments() {
        let row = |key: &str, start: i64, orders: u64, cents: u64| ResultRow {
            key: key.into(),
            window_start_ms: start,
            window_end_ms: start + 60_000,
            value: serde_json::json!({ "orders": orders, "amount_cents": cents }),
        };
        let text = render(
            &[
                row("placed", 0, 3, 900),
                row("paid", 0, 2, 650),
                row("failed", 60_000, 1, 0),
            ],
            10,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("  1970-01-01 00:00 UTC"), "{text}");
        assert!(lines[1].ends_with("6.50"), "{text}");
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cells[3..], ["0", "0", "0", "1", "0.00"], "{text}");
        assert_eq!(status("PaymentFailed"), None);
    }
}
