//! `GET /v1/topics/{name}/partitions/{partition}/events`: replay a
//! partition with no subscription.

use axum::Json;
use axum::extract::State;
use eddy_auth::Access;
use eddy_bus::{Bus, Offset, Partition, ReadFrom};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::json::{ReadResponse, StoredEventJson};
use crate::problem::Problem;
use crate::state::{AppState, BusFor, PathParams, QueryParams};
use crate::time;

/// Events returned by a read that does not say `max`.
pub const READ_DEFAULT_MAX: u32 = 100;

/// Where and how much to read.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// `beginning` (default), `end`, `offset:<n>`, or `time:<ms since the
    /// epoch | RFC 3339>` (the first event appended at or after it).
    pub from: Option<String>,
    /// At most this many events (default 100, at most `max_read_events`).
    pub max: Option<u32>,
}

/// Parses a `from` value.
pub(crate) fn parse_from(text: &str) -> Result<ReadFrom, Problem> {
    let bad = |why: String| Problem::invalid(format!("bad `from` {text:?}: {why}"));
    match text.split_once(':') {
        None if text == "beginning" => Ok(ReadFrom::Beginning),
        None if text == "end" => Ok(ReadFrom::End),
        Some(("offset", n)) => n
            .parse()
            .map(|n| ReadFrom::Offset(Offset(n)))
            .map_err(|_| bad("the offset is not a number".into())),
        Some(("time", t)) => match t.parse::<i64>() {
            Ok(ms) => Ok(ReadFrom::Time(ms)),
            Err(_) => time::parse_rfc3339(t).map(ReadFrom::Time).map_err(bad),
        },
        _ => Err(bad(
            "use beginning, end, offset:<n> or time:<ms | RFC 3339>".into(),
        )),
    }
}

/// Reads up to `max` events of one partition.
#[utoipa::path(
    get,
    path = "/v1/topics/{name}/partitions/{partition}/events",
    tag = "events",
    params(
        ("name" = String, Path, description = "The topic"),
        ("partition" = u32, Path, description = "The partition, from 0"),
        ReadQuery,
    ),
    responses(
        (status = 200, description = "The events and where to read on", body = ReadResponse),
        (status = "default", description = "A problem (404 TopicNotFound or \
            PartitionNotFound, 400 OffsetOutOfRange, ...)", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn read<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams((topic, partition)): PathParams<(String, u32)>,
    QueryParams(q): QueryParams<ReadQuery>,
) -> Result<Json<ReadResponse>, Problem> {
    let from = match q.from.as_deref() {
        None => ReadFrom::Beginning,
        Some(text) => parse_from(text)?,
    };
    let max = checked_max(q.max, st.config.max_read_events)?;
    let batch = bus.read(&topic, Partition(partition), from, max).await?;
    Ok(Json(ReadResponse {
        events: batch.events.iter().map(StoredEventJson::from).collect(),
        next_offset: batch.next_offset.0,
    }))
}

/// A `max` query value: 1..=`limit`, [`READ_DEFAULT_MAX`] (capped) if
/// unset.
pub(crate) fn checked_max(max: Option<u32>, limit: u32) -> Result<u32, Problem> {
    match max {
        None => Ok(READ_DEFAULT_MAX.min(limit)),
        Some(0) => Err(Problem::invalid("`max` must be at least 1")),
        Some(n) if n > limit => Err(Problem::limit(
            "max",
            "max_read_events",
            u64::from(limit),
            u64::from(n),
        )),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_values_parse() {
        // Proves each `from` form, and that bad ones are 400 problems.
        assert_eq!(parse_from("beginning"), Ok(ReadFrom::Beginning));
        assert_eq!(parse_from("end"), Ok(ReadFrom::End));
        assert_eq!(parse_from("offset:42"), Ok(ReadFrom::Offset(Offset(42))));
        assert_eq!(parse_from("time:1000"), Ok(ReadFrom::Time(1000)));
        assert_eq!(
            parse_from("time:1970-01-01T00:00:01Z"),
            Ok(ReadFrom::Time(1000))
        );
        for bad in ["", "start", "offset:", "offset:-1", "time:soon", "end:1"] {
            assert_eq!(parse_from(bad).map_err(|p| p.status), Err(400), "{bad:?}");
        }
        assert_eq!(checked_max(None, 10), Ok(10));
        assert_eq!(checked_max(Some(5), 10), Ok(5));
        assert!(checked_max(Some(0), 10).is_err());
        assert_eq!(checked_max(Some(11), 10).map_err(|p| p.code), Err(1004));
    }
}
