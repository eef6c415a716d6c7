//! The route table: the router and the OpenAPI document, both generated
//! from one list so that neither can miss a route.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use eddy_auth::Access;
use tokio::sync::watch;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::config::HttpConfig;
use crate::json::Health;
use crate::problem::Problem;
use crate::state::AppState;
use crate::{
    all, dead_letters, deliveries, publish, push, read, stats, streams, subscriptions, topics,
};

macro_rules! routes {
    ($( $method:ident $path:literal => $module:ident :: $handler:ident ),* $(,)?) => {
        /// Every route of the router, as (method, path), in the OpenAPI
        /// path syntax (`{name}` is a path parameter).
        pub const ROUTES: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];

        fn add_routes<A: Access>(router: Router<AppState<A>>) -> Router<AppState<A>> {
            router $( .route($path, axum::routing::$method($module::$handler::<A>)) )*
        }

        #[derive(utoipa::OpenApi)]
        #[openapi(
            info(
                title = "Eddy HTTP API",
                description = "Any Eddy bus over HTTP/JSON: topics, publishing (plain JSON \
                    and CloudEvents), replay, subscriptions with leases, SSE push, dead \
                    letters, statistics, and the event store (streams with expected \
                    versions, `$all`). Every error is application/problem+json with the \
                    bus's stable numeric `code`.",
            ),
            paths( $( $module::$handler ),* ),
            components(schemas(Problem)),
            modifiers(&BearerAuth),
        )]
        struct ApiDoc;
    };
}

routes! {
    get "/healthz" => meta::health,
    get "/v1/openapi.json" => meta::openapi_json,
    post "/v1/topics" => topics::create,
    get "/v1/topics" => topics::list,
    get "/v1/topics/{name}" => topics::describe,
    delete "/v1/topics/{name}" => topics::delete,
    post "/v1/topics/{name}/events" => publish::publish,
    get "/v1/topics/{name}/partitions/{partition}/events" => read::read,
    get "/v1/topics/{name}/stats" => stats::topic,
    post "/v1/subscriptions" => subscriptions::create,
    get "/v1/subscriptions" => subscriptions::list,
    get "/v1/subscriptions/{name}" => subscriptions::describe,
    delete "/v1/subscriptions/{name}" => subscriptions::delete,
    post "/v1/subscriptions/{name}/seek" => subscriptions::seek,
    post "/v1/subscriptions/{name}/fetch" => deliveries::fetch,
    post "/v1/subscriptions/{name}/ack" => deliveries::ack,
    post "/v1/subscriptions/{name}/nack" => deliveries::nack,
    post "/v1/subscriptions/{name}/extend" => deliveries::extend,
    post "/v1/subscriptions/{name}/terminate" => deliveries::terminate,
    get "/v1/subscriptions/{name}/events" => push::events,
    get "/v1/subscriptions/{name}/dead-letters" => dead_letters::list,
    get "/v1/subscriptions/{name}/dead-letters/{id}" => dead_letters::show,
    post "/v1/subscriptions/{name}/dead-letters/redrive" => dead_letters::redrive,
    post "/v1/subscriptions/{name}/dead-letters/purge" => dead_letters::purge,
    get "/v1/subscriptions/{name}/stats" => stats::subscription,
    post "/v1/streams/{stream}" => streams::append,
    get "/v1/streams/{stream}" => streams::read,
    delete "/v1/streams/{stream}" => streams::delete,
    get "/v1/streams/{stream}/metadata" => streams::info,
    put "/v1/streams/{stream}/metadata" => streams::set_metadata,
    get "/v1/all" => all::read,
}

/// Declares the optional bearer token.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A token, or none (servers in open mode take none).
        openapi.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

/// The OpenAPI 3.1 document of the API, generated from the handlers'
/// annotations; served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The API's router, its state inside: serves any bus that `access` gives
/// for the caller's token. Add routes with [`Router::merge`] (the router
/// has its own fallback, so the merged one must not).
pub fn router<A: Access>(access: A, config: &HttpConfig) -> Router {
    build(access, config, None)
}

/// The router, its push streams ending when `draining` becomes true.
pub(crate) fn build<A: Access>(
    access: A,
    config: &HttpConfig,
    draining: Option<watch::Receiver<bool>>,
) -> Router {
    let doc = serde_json::to_vec(&openapi()).unwrap_or_default();
    let state = AppState::new(access, config.clone(), draining, Bytes::from(doc));
    add_routes(Router::new())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> Problem {
    Problem::invalid_with(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {}; the routes are in /v1/openapi.json",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::invalid_with(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not take {method}; see /v1/openapi.json",
            uri.path()
        ),
    )
}

mod meta {
    use super::*;
    use axum::Json;

    /// The server is up (no token needed).
    #[utoipa::path(
        get,
        path = "/healthz",
        tag = "meta",
        security(()),
        responses((status = 200, description = "Up", body = Health)),
    )]
    pub(super) async fn health<A: Access>(State(_state): State<AppState<A>>) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// This document.
    #[utoipa::path(
        get,
        path = "/v1/openapi.json",
        tag = "meta",
        security(()),
        responses((status = 200, description = "The OpenAPI document", body = Object)),
    )]
    pub(super) async fn openapi_json<A: Access>(State(st): State<AppState<A>>) -> Response {
        let mut response = st.openapi_json.clone().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
