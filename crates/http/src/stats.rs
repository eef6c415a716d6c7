//! Statistics: `/v1/topics/{name}/stats`, `/v1/subscriptions/{name}/stats`.

use axum::Json;
use eddy_auth::Access;
use eddy_bus::Bus;

use crate::json::{SubscriptionStatsJson, TopicStatsJson};
use crate::problem::Problem;
use crate::state::{BusFor, PathParams};

/// A topic's counters.
#[utoipa::path(
    get,
    path = "/v1/topics/{name}/stats",
    tag = "stats",
    params(("name" = String, Path, description = "The topic")),
    responses(
        (status = 200, description = "The counters", body = TopicStatsJson),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn topic<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
) -> Result<Json<TopicStatsJson>, Problem> {
    Ok(Json((&bus.topic_stats(&name).await?).into()))
}

/// A subscription's counters and backlog.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{name}/stats",
    tag = "stats",
    params(("name" = String, Path, description = "The subscription")),
    responses(
        (status = 200, description = "The counters", body = SubscriptionStatsJson),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn subscription<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
) -> Result<Json<SubscriptionStatsJson>, Problem> {
    Ok(Json((&bus.subscription_stats(&name).await?).into()))
}
