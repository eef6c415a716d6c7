//! Errors as `application/problem+json` (RFC 9457), with the bus's stable
//! numeric codes.
//!
//! Every failure the API returns is a [`Problem`]: a [`BusError`] keeps its
//! code, and errors of HTTP itself (a body that is not JSON, a wrong
//! content type, a body over `max_body_bytes`, a bad query value, an
//! unknown route) get the code of the bus error they amount to:
//! `InvalidArgument` (1003) or `LimitExceeded` (1004).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eddy_bus::BusError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error response.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error response (RFC 9457 problem details) carrying the bus's error
/// code, and the error's structured fields when it has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// `https://eddy.dev/errors/<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The error's name: `TopicNotFound`, `InvalidArgument`, ...
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, in words.
    pub detail: String,
    /// The stable numeric code (`BusError::code`).
    pub code: u16,
    /// The error's structured fields, when it has them.
    #[serde(flatten)]
    pub fields: Box<ProblemFields>,
}

/// The structured fields of a [`Problem`], each present only when it
/// applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemFields {
    /// The argument, setting or thing the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// For a limit: the setting that sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// For a limit: the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// For a limit: the size or count refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<u64>,
    /// The topic concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The subscription concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The delivery concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_id: Option<String>,
    /// The dead letter concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_id: Option<u64>,
    /// The event store's stream concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// For `WrongExpectedVersion`: what the call expected (`any`,
    /// `no_stream`, `exists` or a version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// For `WrongExpectedVersion`: the stream's last version (absent: it
    /// does not exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<u64>,
    /// For `EventIdInUse`: the event id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// For `EventIdInUse`: the version of the event that holds the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl Problem {
    /// A problem with no structured fields.
    pub fn new(status: StatusCode, code: u16, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("https://eddy.dev/errors/{code}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            fields: Box::default(),
        }
    }

    /// 400 `InvalidArgument` (1003): a request the API cannot take.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, 1003, "InvalidArgument", detail)
    }

    /// `InvalidArgument` (1003) with another status: 404 for an unknown
    /// route, 405, 415 for a content type the route does not take.
    pub fn invalid_with(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem::new(status, 1003, "InvalidArgument", detail)
    }

    /// `LimitExceeded` (1004), 413 if the limit is on bytes, else 400.
    pub fn limit(what: &str, setting: &str, limit: u64, actual: u64) -> Problem {
        let detail = format!("{what} of {actual} exceeds `{setting}` = {limit}");
        let mut p = Problem::new(limit_status(setting), 1004, "LimitExceeded", detail);
        p.fields.what = Some(what.to_string());
        p.fields.setting = Some(setting.to_string());
        p.fields.limit = Some(limit);
        p.fields.actual = Some(actual);
        p
    }

    /// 401 `Unauthenticated` (6001).
    pub fn unauthenticated(detail: impl Into<String>) -> Problem {
        Problem::from(BusError::Unauthenticated(detail.into()))
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// 413 for a limit on bytes (the request or event is too large to take),
/// 400 for a limit on counts.
fn limit_status(setting: &str) -> StatusCode {
    if setting.contains("bytes") || setting.contains("BYTES") {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// The HTTP status and title of a bus error.
///
/// `PartitionNotFound` (2003) is 404: the partition is named in the path.
/// `OffsetOutOfRange` (5001) is 400: the offset is a query value.
fn status_and_title(e: &BusError) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match e {
        BusError::InvalidName { .. } => (S::BAD_REQUEST, "InvalidName"),
        BusError::InvalidPattern { .. } => (S::BAD_REQUEST, "InvalidPattern"),
        BusError::InvalidArgument { .. } => (S::BAD_REQUEST, "InvalidArgument"),
        BusError::LimitExceeded { setting, .. } => (limit_status(setting), "LimitExceeded"),
        BusError::TopicNotFound(_) => (S::NOT_FOUND, "TopicNotFound"),
        BusError::TopicExists(_) => (S::CONFLICT, "TopicExists"),
        BusError::PartitionNotFound { .. } => (S::NOT_FOUND, "PartitionNotFound"),
        BusError::SubscriptionNotFound(_) => (S::NOT_FOUND, "SubscriptionNotFound"),
        BusError::SubscriptionExists(_) => (S::CONFLICT, "SubscriptionExists"),
        BusError::AlreadyAcked(_) => (S::CONFLICT, "AlreadyAcked"),
        BusError::DeadLettered(_) => (S::CONFLICT, "DeadLettered"),
        BusError::LeaseExpired(_) => (S::CONFLICT, "LeaseExpired"),
        BusError::UnknownDelivery(_) => (S::CONFLICT, "UnknownDelivery"),
        BusError::OffsetOutOfRange { .. } => (S::BAD_REQUEST, "OffsetOutOfRange"),
        BusError::DeadLetterNotFound(_) => (S::NOT_FOUND, "DeadLetterNotFound"),
        BusError::RedriveSourceGone(_) => (S::CONFLICT, "RedriveSourceGone"),
        BusError::WrongExpectedVersion { .. } => (S::CONFLICT, "WrongExpectedVersion"),
        BusError::StreamNotFound(_) => (S::NOT_FOUND, "StreamNotFound"),
        BusError::EventIdInUse { .. } => (S::CONFLICT, "EventIdInUse"),
        BusError::Unauthenticated(_) => (S::UNAUTHORIZED, "Unauthenticated"),
        BusError::PermissionDenied { .. } => (S::FORBIDDEN, "PermissionDenied"),
        BusError::Storage(_) => (S::INTERNAL_SERVER_ERROR, "Storage"),
        BusError::Poisoned(_) => (S::INTERNAL_SERVER_ERROR, "Poisoned"),
        BusError::Corrupt(_) => (S::INTERNAL_SERVER_ERROR, "Corrupt"),
        BusError::Closed => (S::SERVICE_UNAVAILABLE, "Closed"),
        BusError::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "Unavailable"),
        _ => match e.code() {
            9004 | 9005 => (S::SERVICE_UNAVAILABLE, "Unavailable"),
            c if c >= 9000 => (S::INTERNAL_SERVER_ERROR, "Internal"),
            _ => (S::BAD_REQUEST, "Error"),
        },
    }
}

impl From<BusError> for Problem {
    fn from(e: BusError) -> Problem {
        let (status, title) = status_and_title(&e);
        let mut p = Problem::new(status, e.code(), title, e.to_string());
        match e {
            BusError::InvalidName { what, .. } | BusError::InvalidArgument { what, .. } => {
                p.fields.what = Some(what.to_string());
            }
            BusError::LimitExceeded {
                what,
                setting,
                limit,
                actual,
            } => {
                p.fields.what = Some(what.to_string());
                p.fields.setting = Some(setting.to_string());
                p.fields.limit = Some(limit);
                p.fields.actual = Some(actual);
            }
            BusError::TopicNotFound(t)
            | BusError::TopicExists(t)
            | BusError::PartitionNotFound { topic: t, .. } => p.fields.topic = Some(t),
            BusError::SubscriptionNotFound(s) | BusError::SubscriptionExists(s) => {
                p.fields.subscription = Some(s);
            }
            BusError::AlreadyAcked(id)
            | BusError::DeadLettered(id)
            | BusError::LeaseExpired(id)
            | BusError::UnknownDelivery(id) => p.fields.ack_id = Some(id),
            BusError::DeadLetterNotFound(id) | BusError::RedriveSourceGone(id) => {
                p.fields.dead_letter_id = Some(id);
            }
            BusError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => {
                p.fields.stream = Some(stream);
                p.fields.expected = Some(expected);
                p.fields.actual_version = actual;
            }
            BusError::StreamNotFound(stream) => p.fields.stream = Some(stream),
            BusError::EventIdInUse {
                id,
                stream,
                version,
            } => {
                p.fields.event_id = Some(id);
                p.fields.stream = Some(stream);
                p.fields.version = Some(version);
            }
            _ => {}
        }
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_bus::Partition;

    #[test]
    fn bus_errors_map_to_status_code_and_fields() {
        // Proves the status mapping by code range, that the code and the
        // structured fields survive, and that a limit on bytes is a 413.
        let cases = [
            (BusError::TopicNotFound("t".into()), 404, 2001),
            (BusError::TopicExists("t".into()), 409, 2002),
            (
                BusError::PartitionNotFound {
                    topic: "t".into(),
                    partition: Partition(3),
                    partitions: 1,
                },
                404,
                2003,
            ),
            (BusError::SubscriptionNotFound("s".into()), 404, 3001),
            (BusError::SubscriptionExists("s".into()), 409, 3002),
            (BusError::LeaseExpired("a/0/1/2".into()), 409, 4003),
            (BusError::DeadLetterNotFound(9), 404, 5002),
            (BusError::RedriveSourceGone(9), 409, 5003),
            (BusError::Unauthenticated("no".into()), 401, 6001),
            (
                BusError::PermissionDenied {
                    principal: "p".into(),
                    action: "admin",
                    resource: "t".into(),
                },
                403,
                6002,
            ),
            (
                BusError::WrongExpectedVersion {
                    stream: "order-1".into(),
                    expected: "no_stream".into(),
                    actual: Some(3),
                },
                409,
                7001,
            ),
            (BusError::StreamNotFound("order-1".into()), 404, 7002),
            (
                BusError::EventIdInUse {
                    id: "e-1".into(),
                    stream: "order-2".into(),
                    version: 0,
                },
                409,
                7003,
            ),
            (BusError::Storage("disk".into()), 500, 9001),
            (BusError::Closed, 503, 9004),
            (BusError::Unavailable("down".into()), 503, 9005),
        ];
        for (e, status, code) in cases {
            let p = Problem::from(e.clone());
            assert_eq!((p.status, p.code), (status, code), "{e:?}");
            assert_eq!(p.type_uri, format!("https://eddy.dev/errors/{code}"));
            assert_eq!(p.detail, e.to_string());
        }
        let p = Problem::from(BusError::LimitExceeded {
            what: "event",
            setting: "event_bytes_max",
            limit: 10,
            actual: 20,
        });
        assert_eq!(
            (p.status, p.code, p.fields.limit, p.fields.actual),
            (413, 1004, Some(10), Some(20))
        );
        let p = Problem::from(BusError::LimitExceeded {
            what: "header count",
            setting: "headers_max",
            limit: 1,
            actual: 2,
        });
        assert_eq!(p.status, 400);
        let p = Problem::from(BusError::WrongExpectedVersion {
            stream: "order-1".into(),
            expected: "2".into(),
            actual: None,
        });
        assert_eq!(
            (
                p.fields.stream.as_deref(),
                p.fields.expected.as_deref(),
                p.fields.actual_version
            ),
            (Some("order-1"), Some("2"), None)
        );
        let p = Problem::limit("request body", "max_body_bytes", 5, 6);
        assert_eq!((p.status, p.code), (413, 1004));
        assert_eq!(p.detail, "request body of 6 exceeds `max_body_bytes` = 5");
        let r = Problem::unauthenticated("x").into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
    }
}
