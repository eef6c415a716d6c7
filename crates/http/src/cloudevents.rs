//! Reading the body of a publish: plain JSON events, or CloudEvents 1.0
//! over HTTP in structured, batched or binary mode.
//!
//! The mode follows the request's `Content-Type`:
//!
//! | Content-Type | mode |
//! |---|---|
//! | `application/cloudevents+json` | structured: the body is one CloudEvent in JSON |
//! | `application/cloudevents-batch+json` | batched: a JSON array of CloudEvents |
//! | anything, with a `ce-specversion` header | binary: the body is the data, `Content-Type` its `datacontenttype`, `ce-*` headers the attributes |
//! | `application/json` (or another JSON type, or none) | plain JSON: one event object or an array of them ([`EventInput`](crate::json::EventInput)) |
//!
//! Anything else is refused (415). In binary mode `ce-*` header values are
//! percent-decoded (RFC 3986), as the CloudEvents HTTP binding asks. The
//! extension attributes `key`, `correlationid`, `causationid` and
//! `traceparent` fill Eddy's fields of the same names; any other becomes a
//! header of the event. Every event of a request is read and checked
//! before any is published.

use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use eddy_bus::Event;

use crate::json::{EventFormat, RawObject, event_from_object};
use crate::problem::Problem;
use crate::state::{is_json_media_type, media_type};
use crate::time;

/// Structured mode's media type.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// Batched mode's media type.
pub const BATCH: &str = "application/cloudevents-batch+json";

/// The events of a publish request, in order (at most `max_events`).
pub(crate) fn events_from_request(
    headers: &HeaderMap,
    body: &Bytes,
    max_events: usize,
) -> Result<Vec<Event>, Problem> {
    let media = media_type(headers);
    match media.as_deref() {
        Some(STRUCTURED) => {
            let obj: RawObject = parse(body, "a CloudEvent (a JSON object)")?;
            Ok(vec![event_from_object(obj, EventFormat::Structured)?])
        }
        Some(BATCH) => {
            let objs: Vec<RawObject> = parse(body, "a JSON array of CloudEvents")?;
            check_count(objs.len(), max_events)?;
            objs.into_iter()
                .map(|o| event_from_object(o, EventFormat::Structured))
                .collect()
        }
        _ if headers.contains_key("ce-specversion") => Ok(vec![binary_event(headers, body)?]),
        None => plain(body, max_events),
        Some(m) if is_json_media_type(m) => plain(body, max_events),
        Some(other) => Err(Problem::invalid_with(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "cannot publish {other:?}: send `application/json`, `{STRUCTURED}`, `{BATCH}`, \
                 or binary-mode CloudEvents with `ce-specversion`, `ce-id`, `ce-source` and \
                 `ce-type` headers"
            ),
        )),
    }
}

fn parse<'a, T: serde::Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::invalid(format!("the body is not {what}: {e}")))
}

fn check_count(count: usize, max_events: usize) -> Result<(), Problem> {
    if count == 0 {
        return Err(Problem::invalid("the batch holds no events"));
    }
    if count > max_events {
        return Err(Problem::limit(
            "batch event count",
            "max_batch_events",
            max_events as u64,
            count as u64,
        ));
    }
    Ok(())
}

/// Plain JSON: one event object, or an array of them.
fn plain(body: &[u8], max_events: usize) -> Result<Vec<Event>, Problem> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let objs: Vec<RawObject> = parse(body, "a JSON array of event objects")?;
        check_count(objs.len(), max_events)?;
        objs.into_iter()
            .map(|o| event_from_object(o, EventFormat::Plain))
            .collect()
    } else {
        let obj: RawObject = parse(body, "a JSON event object (or an array of them)")?;
        Ok(vec![event_from_object(obj, EventFormat::Plain)?])
    }
}

/// Binary mode: attributes in `ce-*` headers, the body as data.
fn binary_event(headers: &HeaderMap, body: &Bytes) -> Result<Event, Problem> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if attrs.iter().any(|(a, _)| a == attr) {
            return Err(Problem::invalid(format!(
                "the header `ce-{attr}` is given more than once"
            )));
        }
        let text = percent_decode(value.as_bytes())
            .map_err(|why| Problem::invalid(format!("the header `ce-{attr}` {why}")))?;
        attrs.push((attr.to_string(), text));
    }
    let mut take = |name: &str| {
        attrs
            .iter()
            .position(|(a, _)| a == name)
            .map(|i| attrs.remove(i).1)
    };
    match take("specversion").as_deref() {
        Some("1.0") => {}
        other => {
            return Err(Problem::invalid(format!(
                "`ce-specversion` must be \"1.0\", not {other:?}"
            )));
        }
    }
    let mut required = |name: &str| match take(name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Problem::invalid(format!(
            "a binary-mode CloudEvent needs a non-empty `ce-{name}` header"
        ))),
    };
    let id = required("id")?;
    let source = required("source")?;
    let ty = required("type")?;
    if take("datacontenttype").is_some() {
        return Err(Problem::invalid(
            "in binary mode the data's media type is the Content-Type header, not \
             `ce-datacontenttype`",
        ));
    }
    let time_ms = match take("time") {
        None => None,
        Some(t) => {
            Some(time::parse_rfc3339(&t).map_err(|e| Problem::invalid(format!("ce-time: {e}")))?)
        }
    };
    let data_content_type = match headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Problem::invalid("the Content-Type header is not visible ASCII"))?
                .to_string(),
        ),
    };
    let event = Event {
        id,
        source,
        ty,
        subject: take("subject"),
        time_ms,
        data_content_type,
        data_schema: take("dataschema"),
        data: body.clone(),
        key: take("key"),
        correlation_id: take("correlationid"),
        causation_id: take("causationid"),
        traceparent: take("traceparent"),
        headers: Vec::new(),
    };
    Ok(Event {
        headers: attrs,
        ..event
    })
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (Some(hi), Some(lo)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) else {
                return Err("has a `%` not followed by two hex digits");
            };
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8 once percent-decoded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn binary_mode_reads_headers_and_body() {
        // Proves binary mode: attributes from ce-* (percent-decoded),
        // Eddy's extensions in their fields, other extensions as headers,
        // the body and Content-Type as data and its type.
        let h = headers(&[
            ("content-type", "text/plain"),
            ("ce-specversion", "1.0"),
            ("ce-id", "e-1"),
            ("ce-source", "/s"),
            ("ce-type", "OrderPlaced"),
            ("ce-subject", "caf%C3%A9"),
            ("ce-time", "2000-02-29T12:34:56.789Z"),
            ("ce-key", "k"),
            ("ce-tenant", "acme"),
        ]);
        let events = events_from_request(&h, &Bytes::from_static(b"hi"), 10).expect("event");
        let e = &events[0];
        assert_eq!(
            (e.id.as_str(), e.source.as_str(), e.ty.as_str()),
            ("e-1", "/s", "OrderPlaced")
        );
        assert_eq!(e.subject.as_deref(), Some("café"));
        assert_eq!(e.time_ms, Some(951_827_696_789));
        assert_eq!(e.key.as_deref(), Some("k"));
        assert_eq!(e.data_content_type.as_deref(), Some("text/plain"));
        assert_eq!(&e.data[..], b"hi");
        assert_eq!(e.headers, vec![("tenant".to_string(), "acme".to_string())]);
    }

    #[test]
    fn bad_requests_are_refused_with_problems() {
        // Proves: missing ce-id, a wrong ce-specversion, a bad ce-time, a
        // bad escape, an unknown media type, an empty or oversized batch
        // and broken JSON all give a problem, never an event.
        let base = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "T"),
        ];
        let body = Bytes::from_static(b"x");
        let without = |skip: &str, extra: (&'static str, &'static str)| {
            let mut pairs: Vec<_> = base.iter().copied().filter(|(n, _)| *n != skip).collect();
            pairs.push(extra);
            headers(&pairs)
        };
        for h in [
            without("ce-id", ("content-type", "text/plain")),
            without("ce-specversion", ("ce-specversion", "0.3")),
            without("", ("ce-time", "noon")),
            without("", ("ce-subject", "%zz")),
        ] {
            let p = events_from_request(&h, &body, 10).expect_err("refused");
            assert_eq!(p.status, 400, "{h:?}");
        }
        let p = events_from_request(&headers(&[("content-type", "text/plain")]), &body, 10)
            .expect_err("refused");
        assert_eq!(p.status, 415);
        let batch = headers(&[("content-type", BATCH)]);
        assert!(events_from_request(&batch, &Bytes::from_static(b"[]"), 10).is_err());
        let two = Bytes::from_static(
            br#"[{"specversion":"1.0","id":"1","source":"s","type":"T"},
                 {"specversion":"1.0","id":"2","source":"s","type":"T"}]"#,
        );
        assert_eq!(events_from_request(&batch, &two, 2).map(|e| e.len()), Ok(2));
        let p = events_from_request(&batch, &two, 1).expect_err("too many");
        assert_eq!((p.code, p.status), (1004, 400));
        let json = headers(&[("content-type", "application/json")]);
        assert!(events_from_request(&json, &Bytes::from_static(b"{\"type\":"), 10).is_err());
        assert!(events_from_request(&json, &Bytes::from_static(b"42"), 10).is_err());
    }
}
