//! The OpenAPI document: valid JSON served at /v1/openapi.json, listing
//! every route of the router with its method (and nothing else), with the
//! JSON types as schemas; and every route of the table really is routed.

mod common;

use common::Server;
use eddy_http::ROUTES;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route() {
    // Proves ROUTES and the document's paths agree both ways, the served
    // document is the one `openapi()` builds, and the shared schemas are
    // there.
    let s = Server::start().await;
    let r = s.get("/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let doc = r.json;
    assert_eq!(
        doc,
        serde_json::to_value(eddy_http::openapi()).expect("doc")
    );
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from the document"
        );
    }
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = 0;
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            assert!(
                ROUTES.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not routed"
            );
            documented += 1;
        }
    }
    assert_eq!(documented, ROUTES.len());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Problem",
        "StoredEventJson",
        "DeliveryJson",
        "EventInput",
        "PublishResponse",
        "RecordedEventJson",
        "StreamSliceJson",
        "AllSliceJson",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    s.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_table_is_routed() {
    // Proves each (method, path) of ROUTES reaches a handler: the answer
    // is never the unknown-route or wrong-method problem.
    let s = Server::start().await;
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{name}", "x")
            .replace("{stream}", "order-1")
            .replace("{partition}", "0")
            .replace("{id}", "0");
        let method: reqwest::Method = method.to_uppercase().parse().expect("method");
        let req = s
            .http
            .request(method.clone(), s.url(&concrete))
            .header("content-type", "application/json")
            .body("{}");
        let r = req.send().await.expect("request");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let fallback = body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("no route for") || d.contains("does not take"));
        assert!(
            !fallback && status != 405,
            "{method} {concrete}: {status} {body}"
        );
    }
    s.stop().await.expect("clean stop");
}
