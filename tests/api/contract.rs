//! Every response of a test app is checked against the generated OpenAPI document: a documented
//! route answering a status its operation does not list, or a JSON body that does not match the
//! documented schema, is recorded, and the test fails when its `TestApp` is dropped.
//!
//! Not checked: requests to undocumented paths or methods (the JSON 404/405 fallbacks), and the
//! bodies of the Gemini gateway's POSTs (`/v1beta/models/{model_action}`, the same under `/v1/`,
//! and the OpenAI-compatible `/v1beta/openai/…`): Google's own answers, often streamed, and
//! buffering them here would change what the streaming tests observe. Their statuses are still
//! checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;

/// The problems seen by one app.
pub type Violations = Arc<Mutex<Vec<String>>>;

/// One documented response: its JSON body's schema, if it has one, compiled into a validator the
/// first time a response needs it. (Compiling all of them up front, each with the document's
/// components, took 10 s and more of every test app's start: a test checks a few routes.)
struct Documented {
    schema: Option<Value>,
    json: OnceLock<Result<jsonschema::Validator, String>>,
}

impl Documented {
    /// The validator of its JSON body (`None`: no JSON body documented), or why the documented
    /// schema does not compile.
    fn validator(&self, components: &Value) -> Option<&Result<jsonschema::Validator, String>> {
        let schema = self.schema.as_ref()?;
        Some(self.json.get_or_init(|| {
            let root = serde_json::json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": components,
                "allOf": [schema],
            });
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .map_err(|e| format!("bad schema in the document: {e}"))
        }))
    }
}

/// One documented operation.
struct Operation {
    /// Path template split on '/': `Some(literal)` or `None` for a `{param}`.
    segments: Vec<Option<String>>,
    method: String,
    /// By status (`"200"`, …, `"default"`).
    responses: HashMap<String, Documented>,
    /// Bodies not checked (see the module doc).
    skip_bodies: bool,
}

struct Contract {
    operations: Vec<Operation>,
    components: Value,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let doc = serde_json::to_value(vendor_server::api::openapi::document()).unwrap();
        let components = doc["components"].clone();
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let mut responses = HashMap::new();
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let schema = resolve(&doc, response)["content"]["application/json"]
                        .get("schema")
                        .cloned();
                    responses.insert(
                        status.clone(),
                        Documented {
                            schema,
                            json: OnceLock::new(),
                        },
                    );
                }
                operations.push(Operation {
                    segments: path
                        .split('/')
                        .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                        .collect(),
                    method: method.to_uppercase(),
                    responses,
                    skip_bodies: vendor_server::api::gemini::is_gateway_path(path)
                        && method == "post",
                });
            }
        }
        Contract {
            operations,
            components,
        }
    })
}

/// A `$ref` to `#/components/responses/…` followed, anything else as it is.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or(value),
        None => value,
    }
}

impl Contract {
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let segments: Vec<&str> = path.split('/').collect();
        self.operations.iter().find(|op| {
            op.method == method
                && op.segments.len() == segments.len()
                && op
                    .segments
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| match want {
                        Some(literal) => literal == got,
                        None => !got.is_empty(),
                    })
        })
    }
}

/// Wraps a test app's router so every response is checked (see the module doc).
pub fn checked(router: Router, violations: Violations) -> Router {
    // The document's operations, read before the first request; each response schema compiles
    // when first needed (`every_documented_response_schema_compiles` compiles them all).
    let _ = contract();
    router.layer(axum::middleware::from_fn_with_state(violations, check))
}

async fn check(State(violations): State<Violations>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let Some(operation) = contract().operation(&method, &path) else {
        return response;
    };
    let status = response.status().as_u16().to_string();
    let record = |problem: String| {
        violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{method} {path} → {status}: {problem}"));
    };
    let Some(documented) = operation
        .responses
        .get(&status)
        .or_else(|| operation.responses.get("default"))
    else {
        record("status not in the OpenAPI document".to_owned());
        return response;
    };
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let Some(validator) = documented.validator(&contract().components) else {
        if is_json && !operation.skip_bodies {
            record("a JSON body where the document declares none".to_owned());
        }
        return response;
    };
    if operation.skip_bodies {
        return response;
    }
    if !is_json {
        record("not application/json".to_owned());
        return response;
    }
    let validator = match validator {
        Ok(v) => v,
        Err(e) => {
            record(e.clone());
            return response;
        }
    };
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            record(format!("body unreadable: {e}"));
            return Response::from_parts(parts, Body::empty());
        }
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => {
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
                .collect();
            if !errors.is_empty() {
                let shown: String = value.to_string().chars().take(600).collect();
                record(format!(
                    "body does not match the document: {}; body: {shown}",
                    errors.join("; ")
                ));
            }
        }
        Err(e) => record(format!("body is not JSON: {e}")),
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Fails the test with the violations seen (unless it is failing already).
pub fn assert_none(violations: &Violations) {
    let seen = std::mem::take(&mut *violations.lock().unwrap_or_else(|e| e.into_inner()));
    if !seen.is_empty() && !std::thread::panicking() {
        panic!(
            "responses that break the OpenAPI document (fix the server, or the route's \
             #[utoipa::path] and the snapshot):\n  {}",
            seen.join("\n  ")
        );
    }
}

/// The check itself: an undocumented status and a body off its schema are both caught; a
/// documented answer and an undocumented route are not.
#[tokio::test]
async fn undocumented_statuses_and_off_schema_bodies_are_caught() {
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    let violations = Violations::default();
    let app = checked(
        Router::new()
            .route("/health", get(|| async { StatusCode::IM_A_TEAPOT }))
            .route(
                "/health/live",
                get(|| async { axum::Json(serde_json::json!({"status": 1})) }),
            )
            .route(
                "/v1/offer/{id}",
                get(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        axum::Json(serde_json::json!({"error": "x", "code": "offer_not_found"})),
                    )
                }),
            )
            .route("/elsewhere", get(|| async { StatusCode::IM_A_TEAPOT })),
        violations.clone(),
    );
    for path in ["/health", "/health/live", "/v1/offer/x", "/elsewhere"] {
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let _ = response.into_body().collect().await.unwrap();
    }
    let seen = std::mem::take(&mut *violations.lock().unwrap());
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen[0].starts_with("GET /health → 418: status not in"),
        "{seen:#?}"
    );
    assert!(
        seen[1].starts_with("GET /health/live → 200: body does not match"),
        "{seen:#?}"
    );
}

/// Every response schema of the document compiles (test apps compile only those they meet).
#[test]
fn every_documented_response_schema_compiles() {
    let contract = contract();
    let mut checked = 0;
    for operation in &contract.operations {
        for (status, documented) in &operation.responses {
            if let Some(Err(e)) = documented.validator(&contract.components) {
                panic!(
                    "{} {:?} {status}: {e}",
                    operation.method, operation.segments
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} responses");
}
