//! `POST /v1/topics/{name}/events`: publish one event or a batch, as plain
//! JSON or CloudEvents (see [`crate::cloudevents`] for the modes).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use eddy_auth::Access;
use eddy_bus::Bus;

use crate::cloudevents::events_from_request;
use crate::json::{EventInput, PublishBody, PublishResponse, PublishedJson};
use crate::problem::Problem;
use crate::state::{AppState, BusFor, PathParams, RawBody};

/// Publishes events; all are checked before any is published, and a batch
/// is published all or none.
#[utoipa::path(
    post,
    path = "/v1/topics/{name}/events",
    tag = "events",
    params(("name" = String, Path, description = "The topic")),
    request_body(
        description = "`application/json`: an event or an array of events. \
            `application/cloudevents+json`: one CloudEvent (structured mode). \
            `application/cloudevents-batch+json`: an array of CloudEvents. \
            Any type with `ce-specversion`, `ce-id`, `ce-source`, `ce-type` headers: \
            binary mode, the body is the data.",
        content(
            (PublishBody = "application/json"),
            (Vec<EventInput> = "application/cloudevents-batch+json"),
            (EventInput = "application/cloudevents+json"),
        ),
    ),
    responses(
        (status = 200, description = "Where each event is stored, in order", body = PublishResponse),
        (status = "default", description = "A problem (400 bad event, 413 too large, \
            404 TopicNotFound, 415 media type)", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn publish<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(topic): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<PublishResponse>, Problem> {
    let mut events = events_from_request(&headers, &body, st.config.max_batch_events)?;
    drop(body);
    let published = if events.len() == 1 {
        let event = events.pop().ok_or_else(|| Problem::invalid("no event"))?;
        vec![bus.publish(&topic, event).await?]
    } else {
        bus.publish_batch(&topic, events).await?
    };
    Ok(Json(PublishResponse {
        results: published.iter().map(PublishedJson::from).collect(),
    }))
}
