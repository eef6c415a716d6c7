//! `/v1/subscriptions/{name}/dead-letters`: list, show, redrive and purge a
//! subscription's dead-letter queue.

use axum::Json;
use axum::extract::State;
use eddy_auth::Access;
use eddy_bus::{Bus, DeadLetterSelection, RedriveTarget};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::json::{
    DeadLetterJson, DeadLetterList, PurgeRequest, PurgeResponse, RedriveRequest, RedriveResponse,
};
use crate::problem::Problem;
use crate::read::checked_max;
use crate::state::{AppState, BusFor, JsonBody, PathParams, QueryParams};

/// Which dead letters to list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Ids from this one on (default 0).
    pub from: Option<u64>,
    /// At most this many (default 100, at most `max_read_events`).
    pub max: Option<u32>,
}

/// `ids` xor `all: true`.
fn selection(ids: Option<Vec<u64>>, all: bool) -> Result<DeadLetterSelection, Problem> {
    match (ids, all) {
        (Some(ids), false) if !ids.is_empty() => Ok(DeadLetterSelection::Ids(ids)),
        (None, true) => Ok(DeadLetterSelection::All),
        _ => Err(Problem::invalid(
            "select dead letters with a non-empty `ids` or with `all: true`, not both",
        )),
    }
}

/// A page of dead letters.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{name}/dead-letters",
    tag = "dead letters",
    params(("name" = String, Path, description = "The subscription"), DeadLetterQuery),
    responses(
        (status = 200, description = "The dead letters", body = DeadLetterList),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    QueryParams(q): QueryParams<DeadLetterQuery>,
) -> Result<Json<DeadLetterList>, Problem> {
    let from = q.from.unwrap_or(0);
    let max = checked_max(q.max, st.config.max_read_events)?;
    let letters = bus.dead_letters(&name, from, max).await?;
    let next_from = letters.last().map_or(from, |d| d.id.saturating_add(1));
    Ok(Json(DeadLetterList {
        dead_letters: letters.iter().map(DeadLetterJson::from).collect(),
        next_from,
    }))
}

/// One dead letter.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{name}/dead-letters/{id}",
    tag = "dead letters",
    params(
        ("name" = String, Path, description = "The subscription"),
        ("id" = u64, Path, description = "The dead letter's id"),
    ),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterJson),
        (status = "default", description = "A problem (404 DeadLetterNotFound, ...)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn show<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams((name, id)): PathParams<(String, u64)>,
) -> Result<Json<DeadLetterJson>, Problem> {
    Ok(Json((&bus.dead_letter(&name, id).await?).into()))
}

/// Redrives dead letters — into the subscription with fresh attempts, or
/// published to `to_topic` — and removes them from the queue.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/dead-letters/redrive",
    tag = "dead letters",
    params(("name" = String, Path, description = "The subscription")),
    request_body = RedriveRequest,
    responses(
        (status = 200, description = "How many were redriven", body = RedriveResponse),
        (status = "default", description = "A problem (409 RedriveSourceGone, ...)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn redrive<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<RedriveRequest>,
) -> Result<Json<RedriveResponse>, Problem> {
    let selection = selection(req.ids, req.all)?;
    let target = match req.to_topic {
        Some(topic) => RedriveTarget::Topic(topic),
        None => RedriveTarget::Subscription,
    };
    let redriven = bus.redrive(&name, selection, target).await?;
    Ok(Json(RedriveResponse { redriven }))
}

/// Discards dead letters.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/dead-letters/purge",
    tag = "dead letters",
    params(("name" = String, Path, description = "The subscription")),
    request_body = PurgeRequest,
    responses(
        (status = 200, description = "How many were discarded", body = PurgeResponse),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn purge<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<PurgeRequest>,
) -> Result<Json<PurgeResponse>, Problem> {
    let purged = bus.purge(&name, selection(req.ids, req.all)?).await?;
    Ok(Json(PurgeResponse { purged }))
}
