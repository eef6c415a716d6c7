//! `/v1/topics`: create, list, describe and delete topics.

use axum::Json;
use axum::http::StatusCode;
use eddy_auth::Access;
use eddy_bus::Bus;

use crate::json::{CreateTopic, TopicJson, TopicList};
use crate::problem::Problem;
use crate::state::{BusFor, JsonBody, PathParams};

/// Creates a topic.
#[utoipa::path(
    post,
    path = "/v1/topics",
    tag = "topics",
    request_body = CreateTopic,
    responses(
        (status = 201, description = "Created", body = TopicJson),
        (status = "default", description = "A problem (409 TopicExists, ...)", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    JsonBody(req): JsonBody<CreateTopic>,
) -> Result<(StatusCode, Json<TopicJson>), Problem> {
    let info = bus.create_topic(&req.name, req.config()).await?;
    Ok((StatusCode::CREATED, Json((&info).into())))
}

/// Every topic.
#[utoipa::path(
    get,
    path = "/v1/topics",
    tag = "topics",
    responses(
        (status = 200, description = "The topics", body = TopicList),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
) -> Result<Json<TopicList>, Problem> {
    let topics = bus.list_topics().await?;
    Ok(Json(TopicList {
        topics: topics.iter().map(TopicJson::from).collect(),
    }))
}

/// One topic.
#[utoipa::path(
    get,
    path = "/v1/topics/{name}",
    tag = "topics",
    params(("name" = String, Path, description = "The topic")),
    responses(
        (status = 200, description = "The topic", body = TopicJson),
        (status = "default", description = "A problem (404 TopicNotFound, ...)", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn describe<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(name): PathParams<String>,
) -> Result<Json<TopicJson>, Problem> {
    Ok(Json((&bus.describe_topic(&name).await?).into()))
}

/// Deletes a topic and its events.
#[utoipa::path(
    delete,
    path = "/v1/topics/{name}",
    tag = "topics",
    params(("name" = String, Path, description = "The topic")),
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
    bus.delete_topic(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
