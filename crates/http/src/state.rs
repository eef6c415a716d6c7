//! The router's shared state, and the extractors every handler uses: the
//! caller's bus (from its bearer token), JSON bodies, queries and paths —
//! each failing with a [`Problem`], never axum's plain-text rejections.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use eddy_auth::Access;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::config::HttpConfig;
use crate::problem::Problem;
use crate::push::Holds;

/// What every handler shares.
pub(crate) struct AppState<A> {
    inner: Arc<Shared<A>>,
}

impl<A> Clone for AppState<A> {
    fn clone(&self) -> Self {
        AppState {
            inner: Arc::clone(&self.inner),
        }
    }
}

pub(crate) struct Shared<A> {
    pub access: A,
    pub config: HttpConfig,
    /// Becomes `true` when the server shuts down: push streams end.
    pub draining: watch::Receiver<bool>,
    /// The credits held by manual-ack SSE streams.
    pub holds: Arc<Holds>,
    /// `/v1/openapi.json`, rendered once.
    pub openapi_json: Bytes,
    /// Keeps `draining` open for a router with no server behind it.
    _never_drains: Option<watch::Sender<bool>>,
}

impl<A> AppState<A> {
    pub(crate) fn new(
        access: A,
        config: HttpConfig,
        draining: Option<watch::Receiver<bool>>,
        openapi_json: Bytes,
    ) -> AppState<A> {
        let (never_drains, draining) = match draining {
            Some(rx) => (None, rx),
            None => {
                let (tx, rx) = watch::channel(false);
                (Some(tx), rx)
            }
        };
        AppState {
            inner: Arc::new(Shared {
                access,
                config,
                draining,
                holds: Arc::new(Holds::default()),
                openapi_json,
                _never_drains: never_drains,
            }),
        }
    }
}

impl<A> std::ops::Deref for AppState<A> {
    type Target = Shared<A>;

    fn deref(&self) -> &Shared<A> {
        &self.inner
    }
}

/// The bus to serve this request on, from `Authorization: Bearer <token>`
/// (no header: no token).
pub(crate) struct BusFor<B>(pub B);

impl<A: Access> FromRequestParts<AppState<A>> for BusFor<A::Bus> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<A>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        Ok(BusFor(state.access.bus_for(token)?))
    }
}

/// The token of an `Authorization: Bearer` header; a header of any other
/// form is refused (401).
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::unauthenticated(
            "send one Authorization header, not several",
        ));
    }
    let malformed =
        || Problem::unauthenticated("the Authorization header must be `Bearer <token>`");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.bytes().any(|b| b.is_ascii_whitespace())
    {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// The lowercase media type of the request (`application/json`), without
/// parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    Some(essence.to_ascii_lowercase())
}

/// Whether a media type is JSON: `application/json`, `text/json` or
/// `*+json`.
pub(crate) fn is_json_media_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// The request body, at most `max_body_bytes` (else 413).
pub(crate) struct RawBody(pub Bytes);

impl<A: Access> FromRequest<AppState<A>> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState<A>) -> Result<Self, Self::Rejection> {
        let limit = state.config.max_body_bytes;
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                let mut p = Problem::limit("request body", "max_body_bytes", limit as u64, 0);
                p.fields.actual = None;
                p.detail = format!("the request body exceeds `max_body_bytes` = {limit}");
                Err(p)
            }
            Err(e) => Err(Problem::invalid(format!(
                "could not read the request body: {}",
                e.body_text()
            ))),
        }
    }
}

/// A JSON request body (`Content-Type: application/json`, or none); an
/// empty body counts as `{}`.
pub(crate) struct JsonBody<T>(pub T);

impl<A: Access, T: DeserializeOwned> FromRequest<AppState<A>> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState<A>) -> Result<Self, Self::Rejection> {
        if let Some(media) = media_type(req.headers())
            && !is_json_media_type(&media)
        {
            return Err(Problem::invalid_with(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("this route takes `application/json`, not {media:?}"),
            ));
        }
        let RawBody(body) = RawBody::from_request(req, state).await?;
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &body
        };
        serde_json::from_slice(body)
            .map(JsonBody)
            .map_err(|e| Problem::invalid(format!("the body is not the JSON expected: {e}")))
    }
}

/// Query parameters; a bad one is a 400 problem.
pub(crate) struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| Problem::invalid(e.body_text()))
    }
}

/// Path parameters; one that does not parse is a 400 problem.
pub(crate) struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParams(p))
            .map_err(|e| Problem::invalid(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens_are_parsed_and_malformed_headers_refused() {
        // Proves: no header is no token; `Bearer x` (any case) is token x;
        // any other form is a 401 problem, never a panic.
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Ok(None));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer_token(&h), Ok(Some("abc")));
        for bad in ["abc", "Basic abc", "Bearer ", "Bearer a b", "Bearer"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert_eq!(bearer_token(&h).map_err(|p| p.status), Err(401), "{bad:?}");
        }
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").expect("opaque header"),
        );
        assert!(bearer_token(&h).is_err());
        assert!(is_json_media_type(
            "application/cloudevents+json; charset=utf-8"
        ));
        assert!(!is_json_media_type("text/plain"));
    }
}
