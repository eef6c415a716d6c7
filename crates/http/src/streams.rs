//! The event store's streams: `POST /v1/streams/{stream}` (append),
//! `GET /v1/streams/{stream}` (read), `DELETE /v1/streams/{stream}`, and
//! `GET` / `PUT /v1/streams/{stream}/metadata` (what the store knows of
//! it; its settings).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use eddy_auth::Access;
use eddy_bus::store::STORE_READ_MAX;
use eddy_bus::{Direction, EventStore, ExpectedVersion, StreamFrom};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::cloudevents::events_from_request;
use crate::json::{AppendResponse, StreamInfoJson, StreamMetadataJson, StreamSliceJson};
use crate::problem::Problem;
use crate::read::checked_max;
use crate::state::{AppState, BusFor, JsonBody, PathParams, QueryParams, RawBody};

/// Where the stream must be for an append or a delete.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExpectedQuery {
    /// `any` (default), `no_stream`, `exists`, or the version of the
    /// stream's last event.
    pub expected: Option<String>,
}

impl ExpectedQuery {
    fn expected(&self) -> Result<ExpectedVersion, Problem> {
        match self.expected.as_deref() {
            None => Ok(ExpectedVersion::Any),
            Some(text) => text.parse::<ExpectedVersion>().map_err(Problem::from),
        }
    }
}

/// Where and how much of a stream to read.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamReadQuery {
    /// `start` (default: the first readable event, or the last one
    /// backward) or a version.
    pub from: Option<String>,
    /// `forward` (default) or `backward`.
    pub direction: Option<String>,
    /// At most this many events (default 100, at most `max_read_events`
    /// and 10,000).
    pub max: Option<u32>,
}

fn parse_stream_from(text: &str) -> Result<StreamFrom, Problem> {
    match text {
        "start" => Ok(StreamFrom::Start),
        n => n.parse().map(StreamFrom::Version).map_err(|_| {
            Problem::invalid(format!(
                "bad `from` {text:?}: use start or a version number"
            ))
        }),
    }
}

fn parse_direction(text: &str) -> Result<Direction, Problem> {
    match text {
        "forward" => Ok(Direction::Forward),
        "backward" => Ok(Direction::Backward),
        _ => Err(Problem::invalid(format!(
            "bad `direction` {text:?}: use forward or backward"
        ))),
    }
}

/// Appends events to a stream, all or none, if the stream is where
/// `expected` says. A retried append (the same event ids at the versions
/// they got) is a success marked `duplicate`.
#[utoipa::path(
    post,
    path = "/v1/streams/{stream}",
    tag = "streams",
    params(("stream" = String, Path, description = "The stream (`<category>-<id>`)"), ExpectedQuery),
    request_body(
        description = "An event or an array of events, as `POST /v1/topics/{name}/events` \
            takes them (plain JSON, or CloudEvents in structured, batched or binary mode). \
            An event without an `id` gets one.",
        content(
            (crate::json::PublishBody = "application/json"),
            (Vec<crate::json::EventInput> = "application/cloudevents-batch+json"),
            (crate::json::EventInput = "application/cloudevents+json"),
        ),
    ),
    responses(
        (status = 200, description = "Where the events are", body = AppendResponse),
        (status = "default", description = "A problem (409 WrongExpectedVersion or \
            EventIdInUse, 400 bad event or stream name, 413 too large)", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn append<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(stream): PathParams<String>,
    QueryParams(q): QueryParams<ExpectedQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<AppendResponse>, Problem> {
    let expected = q.expected()?;
    let events = events_from_request(&headers, &body, st.config.max_batch_events)?;
    drop(body);
    let result = bus.append(&stream, expected, events).await?;
    Ok(Json((&result).into()))
}

/// Reads part of a stream, forward or backward; `next` says where the
/// next read starts. A stream that does not exist reads as empty with no
/// last version.
#[utoipa::path(
    get,
    path = "/v1/streams/{stream}",
    tag = "streams",
    params(("stream" = String, Path, description = "The stream"), StreamReadQuery),
    responses(
        (status = 200, description = "The events and where to read on", body = StreamSliceJson),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn read<A: Access>(
    State(st): State<AppState<A>>,
    BusFor(bus): BusFor<A::Bus>,
    PathParams(stream): PathParams<String>,
    QueryParams(q): QueryParams<StreamReadQuery>,
) -> Result<Json<StreamSliceJson>, Problem> {
    let from = q
        .from
        .as_deref()
        .map_or(Ok(StreamFrom::Start), parse_stream_from)?;
    let direction = q
        .direction
        .as_deref()
        .map_or(Ok(Direction::Forward), parse_direction)?;
    let max = checked_max(q.max, st.config.max_read_events.min(STORE_READ_MAX))?;
    let slice = bus.read_stream(&stream, from, direction, max).await?;
    Ok(Json((&slice).into()))
}

/// Deletes a stream (soft) if it is where `expected` says: it reads as
/// not existing; a later append re-creates it, numbering on.
#[utoipa::path(
    delete,
    path = "/v1/streams/{stream}",
    tag = "streams",
    params(("stream" = String, Path, description = "The stream"), ExpectedQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = "default", description = "A problem (404 StreamNotFound, 409 \
            WrongExpectedVersion)", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn delete<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(stream): PathParams<String>,
    QueryParams(q): QueryParams<ExpectedQuery>,
) -> Result<StatusCode, Problem> {
    bus.delete_stream(&stream, q.expected()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the store knows of a stream: its last version, settings and
/// whether it was deleted.
#[utoipa::path(
    get,
    path = "/v1/streams/{stream}/metadata",
    tag = "streams",
    params(("stream" = String, Path, description = "The stream")),
    responses(
        (status = 200, description = "The stream", body = StreamInfoJson),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn info<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(stream): PathParams<String>,
) -> Result<Json<StreamInfoJson>, Problem> {
    let info = bus.stream_info(&stream).await?;
    Ok(Json((&info).into()))
}

/// Replaces a stream's settings (a field left out is no limit).
#[utoipa::path(
    put,
    path = "/v1/streams/{stream}/metadata",
    tag = "streams",
    params(("stream" = String, Path, description = "The stream")),
    request_body = StreamMetadataJson,
    responses(
        (status = 204, description = "Replaced"),
        (status = "default", description = "A problem", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn set_metadata<A: Access>(
    BusFor(bus): BusFor<A::Bus>,
    PathParams(stream): PathParams<String>,
    JsonBody(metadata): JsonBody<StreamMetadataJson>,
) -> Result<StatusCode, Problem> {
    bus.set_stream_metadata(&stream, metadata.into()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_parse() {
        // Proves each `from`, `direction` and `expected` form, and that bad
        // ones are 400 problems.
        assert_eq!(parse_stream_from("start"), Ok(StreamFrom::Start));
        assert_eq!(parse_stream_from("42"), Ok(StreamFrom::Version(42)));
        assert_eq!(parse_direction("backward"), Ok(Direction::Backward));
        for bad in ["", "-1", "end", "1.5"] {
            assert_eq!(parse_stream_from(bad).map_err(|p| p.status), Err(400));
        }
        assert!(parse_direction("up").is_err());
        let q = |e: &str| ExpectedQuery {
            expected: Some(e.into()),
        };
        assert_eq!(q("no_stream").expected(), Ok(ExpectedVersion::NoStream));
        assert_eq!(q("7").expected(), Ok(ExpectedVersion::Exact(7)));
        assert_eq!(q("latest").expected().map_err(|p| p.code), Err(1003));
        assert_eq!(
            ExpectedQuery { expected: None }.expected(),
            Ok(ExpectedVersion::Any)
        );
    }
}
