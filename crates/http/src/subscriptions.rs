//! `/v1/subscriptions`: create, list, describe, delete and seek
//! subscriptions.

use axum::Json;
use axum::http::StatusCode;
use eddy_auth::Access;
use eddy_bus::Bus;

use crate::json::{CreateSubscription, SeekRequest, SubscriptionJson, SubscriptionList};
use crate::problem::Problem;
use crate::state::{BusFor, JsonBody, PathParams};

/// Creates a durable, named subscription.
#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    request_body = CreateSubscription,
    responses(
        (status = 201, description = "Created", body = SubscriptionJson),
        (status = "default", description = "A problem (409 SubscriptionExists, ...)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    JsonBody(req): JsonBody<CreateSubscription>,
) -> Result<(StatusCode, Json<SubscriptionJson>), Problem> {
    let info = bus.create_subscription(&req.name, req.config()?).await?;
    Ok((StatusCode::CREATED, Json((&info).into())))
}

/// Every subscription.
#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    responses(
        (status = 200, description = "The subscriptions", body = SubscriptionList),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
) -> Result<Json<SubscriptionList>, Problem> {
    let subs = bus.list_subscriptions().await?;
    Ok(Json(SubscriptionList {
        subscriptions: subs.iter().map(SubscriptionJson::from).collect(),
    }))
}

/// One subscription.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{name}",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionJson),
        (status = "default", description = "A problem (404 SubscriptionNotFound, ...)",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn describe<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
) -> Result<Json<SubscriptionJson>, Problem> {
    Ok(Json((&bus.describe_subscription(&name).await?).into()))
}

/// Deletes a subscription, its pending state and its dead letters.
#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{name}",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription")),
    responses(
        (status = 204, description = "Deleted"),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn delete<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, Problem> {
    bus.delete_subscription(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves a subscription to a position; pending deliveries and scheduled
/// retries are dropped.
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{name}/seek",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription")),
    request_body = SeekRequest,
    responses(
        (status = 204, description = "Moved"),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn seek<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<SeekRequest>,
) -> Result<StatusCode, Problem> {
    bus.seek(&name, req.to.to_start()?).await?;
    Ok(StatusCode::NO_CONTENT)
}
