//! `GET /openapi.json` (SPEC §9): an OpenAPI 3.1 document that names every
//! endpoint of SPEC §3 with the methods the live router answers, under the
//! bearer scheme where a token is required. (schemathesis checks a live
//! jwtd against it in tests/openapi/run.sh.)

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, expect_json, spawn_app_with};

/// SPEC §3's endpoints, each under the spelling the document names.
const ENDPOINTS: [(&str, &str); 15] = [
    ("POST", "/api/token/"),
    ("POST", "/api/token/refresh/"),
    ("POST", "/api/token/verify/"),
    ("POST", "/api/token/blacklist/"),
    ("POST", "/api/token/sliding/"),
    ("POST", "/api/token/sliding/refresh/"),
    ("POST", "/api/token/logout-all/"),
    ("GET", "/api/me/"),
    ("GET", "/.well-known/jwks.json"),
    ("OPTIONS", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/openapi.json"),
];

/// The methods a route could be asked for, besides HEAD (which every GET
/// answers).
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

async fn app_and_document() -> (TestApp, Value) {
    // With an issuer URL, discovery answers 200 like every other route.
    let app = spawn_app_with(|config| config.issuer = Some("http://jwtd.test".into())).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "the document's media type"
    );
    let document = expect_json(response, StatusCode::OK).await;
    (app, document)
}

/// Every (method, path) the document names, methods upper-case.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            METHODS
                .iter()
                .filter(|method| item.contains_key(&method.to_ascii_lowercase()))
                .map(|method| ((*method).to_owned(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_names_every_endpoint_with_its_method() {
    let (_app, document) = app_and_document().await;
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "version {version}");
    let expected: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(operations(&document), expected);
}

#[tokio::test]
async fn every_documented_operation_is_routed_under_both_spellings_and_no_other_method_is() {
    let (app, document) = app_and_document().await;
    let documented = operations(&document);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    for path in paths {
        let other = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        for method in METHODS {
            let is_documented = documented.contains(&(method.to_owned(), path.clone()));
            for spelling in [path.as_str(), other.as_str()] {
                let response = app
                    .client
                    .request(
                        Method::from_bytes(method.as_bytes()).unwrap(),
                        app.url(spelling),
                    )
                    .send()
                    .await
                    .expect("request sent");
                let status = response.status();
                if is_documented {
                    assert!(
                        status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {spelling} is documented but answered {status}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {spelling} is not documented"
                    );
                    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
                    let allowed: BTreeSet<&str> = allow.split(", ").collect();
                    let mut want: BTreeSet<&str> = documented
                        .iter()
                        .filter(|(_, p)| p == path)
                        .map(|(m, _)| m.as_str())
                        .collect();
                    if want.contains("GET") {
                        want.insert("HEAD");
                    }
                    assert_eq!(allowed, want, "Allow of {method} {spelling}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_bearer_scheme_guards_exactly_the_protected_views() {
    let (_app, document) = app_and_document().await;
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][method.to_ascii_lowercase()];
        if let Some(refused) = operation["responses"].get("401") {
            assert!(
                refused["headers"]["WWW-Authenticate"].is_object(),
                "{method} {path}: every 401 carries the challenge"
            );
        }
        let protected = matches!(path.as_str(), "/api/me/" | "/api/token/logout-all/");
        if protected {
            assert_eq!(
                operation["security"],
                serde_json::json!([{"bearer": []}]),
                "{method} {path}"
            );
            assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        } else {
            assert!(operation.get("security").is_none(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn bodies_come_as_json_or_forms_and_every_reference_resolves() {
    let (_app, document) = app_and_document().await;
    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][method.to_ascii_lowercase()];
        if let Some(body) = operation.get("requestBody") {
            let types: BTreeSet<&str> = body["content"]
                .as_object()
                .expect("content")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                types,
                BTreeSet::from(["application/json", "application/x-www-form-urlencoded"]),
                "{method} {path}"
            );
            for status in ["400", "408", "413", "415", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} documents {status}"
                );
            }
        }
    }
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference.strip_prefix('#').expect("a local reference");
        assert!(document.pointer(pointer).is_some(), "{reference} resolves");
    }
}

fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => into.push(reference.clone()),
                    _ => collect_references(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, into)),
        _ => {}
    }
}
