//! Pull delivery: `POST /v1/subscriptions/{name}/fetch`, and settling
//! deliveries: `ack`, `nack`, `extend`, `terminate`.
//!
//! A settled delivery that an SSE stream of this server sent returns its
//! credit to that stream (see [`crate::push`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use eddy_auth::Access;
use eddy_bus::{AckId, Bus, FETCH_MAX, FetchOptions, NackOptions, WAIT_MS_MAX};

use crate::json::{
    AckRequest, AckResponse, AckResult, DeliveryJson, ExtendRequest, ExtendResponse, FetchRequest,
    FetchResponse, NackRequest, TerminateRequest,
};
use crate::problem::Problem;
use crate::state::{AppState, BusFor, JsonBody, PathParams};

/// Deliveries one fetch returns when it does not say `max`.
pub const FETCH_DEFAULT_MAX: u32 = 10;

fn ack_id(text: &str) -> Result<AckId, Problem> {
    text.parse::<AckId>().map_err(Problem::from)
}

/// Hands out up to `max` deliveries, each with a lease; waits up to
/// `wait_ms` for the first if none is ready. An empty body is `{}`.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/fetch",
    tag = "deliveries",
    params(("name" = String, Path, description = "The subscription")),
    request_body = FetchRequest,
    responses(
        (status = 200, description = "The deliveries (maybe none)", body = FetchResponse),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn fetch<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<FetchRequest>,
) -> Result<Json<FetchResponse>, Problem> {
    let max = req.max.unwrap_or(FETCH_DEFAULT_MAX);
    if max == 0 || max > FETCH_MAX {
        return Err(Problem::invalid(format!(
            "`max` must be 1..={FETCH_MAX}, not {max}"
        )));
    }
    let wait_ms = req.wait_ms.unwrap_or(0);
    if wait_ms > WAIT_MS_MAX {
        return Err(Problem::invalid(format!(
            "`wait_ms` must be 0..={WAIT_MS_MAX}, not {wait_ms}"
        )));
    }
    let deliveries = bus.fetch(&name, FetchOptions { max, wait_ms }).await?;
    Ok(Json(FetchResponse {
        deliveries: deliveries.iter().map(DeliveryJson::from).collect(),
    }))
}

/// Acks deliveries with one durable write; each gets its own outcome.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/ack",
    tag = "deliveries",
    params(("name" = String, Path, description = "The subscription")),
    request_body = AckRequest,
    responses(
        (status = 200, description = "One outcome per ack id, in order", body = AckResponse),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn ack<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<AckRequest>,
) -> Result<Json<AckResponse>, Problem> {
    if req.ack_ids.len() > FETCH_MAX as usize {
        return Err(Problem::limit(
            "ack id count",
            "FETCH_MAX",
            u64::from(FETCH_MAX),
            req.ack_ids.len() as u64,
        ));
    }
    // Ids that do not parse get their own failure; the rest go to the bus.
    let mut results: Vec<Option<AckResult>> = Vec::with_capacity(req.ack_ids.len());
    let mut valid = Vec::new();
    for text in &req.ack_ids {
        match ack_id(text) {
            Ok(id) => {
                valid.push(id);
                results.push(None);
            }
            Err(p) => results.push(Some(AckResult::failed(text.clone(), p))),
        }
    }
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        bus.ack_all(&name, &valid).await?
    };
    let mut outcomes = outcomes.into_iter();
    let results = req
        .ack_ids
        .into_iter()
        .zip(results)
        .map(|(text, parsed)| match parsed {
            Some(failed) => failed,
            None => match outcomes.next() {
                Some(Ok(())) => {
                    if let Ok(id) = ack_id(&text) {
                        st.holds.release(&name, &id.to_string());
                    }
                    AckResult {
                        ack_id: text,
                        ok: true,
                        error: None,
                    }
                }
                Some(Err(e)) => AckResult::failed(text, e.into()),
                None => AckResult::failed(
                    text,
                    Problem::from(eddy_bus::BusError::Storage(
                        "the bus returned fewer outcomes than ack ids".into(),
                    )),
                ),
            },
        })
        .collect();
    Ok(Json(AckResponse { results }))
}

/// Reports a failed delivery: retried after the backoff (or `delay_ms`),
/// or dead-lettered if it was the last attempt.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/nack",
    tag = "deliveries",
    params(("name" = String, Path, description = "The subscription")),
    request_body = NackRequest,
    responses(
        (status = 204, description = "Nacked"),
        (status = "default", description = "A problem (409 for a delivery no longer \
            leased, ...)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn nack<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<NackRequest>,
) -> Result<StatusCode, Problem> {
    let id = ack_id(&req.ack_id)?;
    let options = NackOptions {
        delay_ms: req.delay_ms,
        error: req.error,
    };
    bus.nack(&name, &id, options).await?;
    st.holds.release(&name, &id.to_string());
    Ok(StatusCode::NO_CONTENT)
}

/// Extends a delivery's lease by the subscription's `ack_wait_ms` from now.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/extend",
    tag = "deliveries",
    params(("name" = String, Path, description = "The subscription")),
    request_body = ExtendRequest,
    responses(
        (status = 200, description = "The new deadline", body = ExtendResponse),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn extend<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<ExtendRequest>,
) -> Result<Json<ExtendResponse>, Problem> {
    let id = ack_id(&req.ack_id)?;
    let lease_deadline_ms = bus.extend(&name, &id).await?;
    st.holds.extend(&name, &id.to_string(), lease_deadline_ms);
    Ok(Json(ExtendResponse { lease_deadline_ms }))
}

/// Sends a delivery's event straight to the dead-letter queue.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/terminate",
    tag = "deliveries",
    params(("name" = String, Path, description = "The subscription")),
    request_body = TerminateRequest,
    responses(
        (status = 204, description = "Dead-lettered"),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn terminate<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<TerminateRequest>,
) -> Result<StatusCode, Problem> {
    let id = ack_id(&req.ack_id)?;
    bus.terminate(&name, &id, &req.reason).await?;
    st.holds.release(&name, &id.to_string());
    Ok(StatusCode::NO_CONTENT)
}
