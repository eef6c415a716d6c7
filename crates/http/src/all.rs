//! `GET /v1/all`: the event store's global feed, `$all`, in position
//! order, optionally filtered, optionally waiting for new events.

use axum::Json;
use axum::extract::State;
use eddy_auth::Access;
use eddy_bus::store::STORE_READ_MAX;
use eddy_bus::{AllFilter, EventStore, WAIT_MS_MAX};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::json::AllSliceJson;
use crate::problem::Problem;
use crate::read::checked_max;
use crate::state::{AppState, BusFor, QueryParams};

/// Where to read `$all` from, which events, and how long to wait.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AllQuery {
    /// The position to read from (default 0: the start; a read's `next`
    /// goes on from it).
    pub from: Option<u64>,
    /// Only events of this category's streams (`order` for `order-*`).
    pub category: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub ty: Option<String>,
    /// Only events of streams whose name starts with this (`$` for the
    /// system's, which are otherwise left out).
    pub prefix: Option<String>,
    /// At most this many events (default 100, at most `max_read_events`
    /// and 10,000).
    pub max: Option<u32>,
    /// If no event is there yet, wait up to this long for one (ms, at most
    /// 60,000; default 0).
    pub wait_ms: Option<u64>,
}

impl AllQuery {
    /// The filter: at most one of `category`, `type` and `prefix`.
    fn filter(&self) -> Result<AllFilter, Problem> {
        match (&self.category, &self.ty, &self.prefix) {
            (None, None, None) => Ok(AllFilter::All),
            (Some(c), None, None) => Ok(AllFilter::Category(c.clone())),
            (None, Some(t), None) => Ok(AllFilter::EventType(t.clone())),
            (None, None, Some(p)) => Ok(AllFilter::StreamPrefix(p.clone())),
            _ => Err(Problem::invalid(
                "filter by one of `category`, `type` and `prefix`, not several",
            )),
        }
    }
}

/// Reads up to `max` events of `$all` from `from` that pass the filter,
/// waiting up to `wait_ms` for the first if none is there (a long poll).
#[utoipa::path(
    get,
    path = "/v1/all",
    tag = "streams",
    params(AllQuery),
    responses(
        (status = 200, description = "The events and where to read on", body = AllSliceJson),
        (status = "default", description = "A problem (400 a position past the head, ...)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn read<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    QueryParams(q): QueryParams<AllQuery>,
) -> Result<Json<AllSliceJson>, Problem> {
    let filter = q.filter()?;
    let max = checked_max(q.max, st.config.max_read_events.min(STORE_READ_MAX))?;
    let wait_ms = q.wait_ms.unwrap_or(0);
    if wait_ms > WAIT_MS_MAX {
        return Err(Problem::invalid(format!(
            "`wait_ms` must be 0..={WAIT_MS_MAX}, not {wait_ms}"
        )));
    }
    let slice = bus
        .read_all(q.from.unwrap_or(0), filter, max, wait_ms)
        .await?;
    Ok(Json((&slice).into()))
}
