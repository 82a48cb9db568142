//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of every route (kept complete by a test that
//! compares it with the routes registered in `src/api`). The document is assembled from fragments in
//! `src/api/openapi/`: `base.json` (info, shared schemas) plus one file per resource, each holding
//! `paths` and `components.schemas` that are merged into the base.

use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use super::error::ApiError;
use crate::state::AppState;

/// The base document and the per-resource fragments merged into it.
const BASE: &str = include_str!("openapi/base.json");
const FRAGMENTS: &[&str] = &[
    include_str!("openapi/appstore.json"),
    include_str!("openapi/gemini.json"),
    include_str!("openapi/checkout.json"),
    include_str!("openapi/purchases.json"),
    include_str!("openapi/metering.json"),
];

/// The merged document.
pub fn document() -> Result<Value, serde_json::Error> {
    let mut doc: Value = serde_json::from_str(BASE)?;
    for fragment in FRAGMENTS {
        let fragment: Value = serde_json::from_str(fragment)?;
        for section in ["/paths", "/components/schemas"] {
            let source = fragment.pointer(section).and_then(Value::as_object);
            if let (Some(source), Some(Value::Object(target))) = (source, doc.pointer_mut(section))
            {
                target.extend(source.clone());
            }
        }
    }
    Ok(doc)
}

/// The merged document, built once per process.
fn merged() -> Result<&'static Value, ApiError> {
    static MERGED: OnceLock<Result<Value, String>> = OnceLock::new();
    MERGED
        .get_or_init(|| document().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("openapi document: {e}")))
}

/// The document served for one public base URL, serialised once (a process normally has one).
fn rendered(public_base_url: &str) -> Result<Bytes, ApiError> {
    static RENDERED: Mutex<Option<(String, Bytes)>> = Mutex::new(None);
    let mut cache = RENDERED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((url, body)) = cache.as_ref()
        && url == public_base_url
    {
        return Ok(body.clone());
    }
    let mut doc = merged()?.clone();
    doc["servers"] = serde_json::json!([{ "url": public_base_url }]);
    let body = Bytes::from(serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.into()))?);
    *cache = Some((public_base_url.to_owned(), body.clone()));
    Ok(body)
}

async fn openapi(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = rendered(&state.config.server.public_base_url)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(openapi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("<path>", <method>(…))` in src/api is documented with that method.
    #[test]
    fn every_route_is_documented() {
        let doc = document().unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut missing = Vec::new();
        let mut checked = 0;
        for entry in walk(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/api"
        ))) {
            let text = std::fs::read_to_string(&entry).unwrap();
            // Test routers are not part of the API.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            for chunk in flat.split(".route(\"").skip(1) {
                let Some((path, rest)) = chunk.split_once('"') else {
                    continue;
                };
                let openapi_path = path.to_owned();
                // The methods chained on this route: `get(h).post(h)`.
                let call = rest.trim_start_matches([',', ' ']);
                let call = call.split(".route(").next().unwrap_or(call);
                for method in ["get", "post", "put", "delete", "patch"] {
                    if call.starts_with(&format!("{method}("))
                        || call.contains(&format!(").{method}("))
                    {
                        checked += 1;
                        if paths
                            .get(&openapi_path)
                            .and_then(|p| p.get(method))
                            .is_none()
                        {
                            missing.push(format!("{} {openapi_path}", method.to_uppercase()));
                        }
                    }
                }
            }
        }
        assert!(checked >= 5, "found only {checked} routes");
        assert!(
            missing.is_empty(),
            "routes missing from src/api/openapi/*.json: {missing:?}"
        );
    }

    #[test]
    fn document_is_serialised_once_per_base_url() {
        let a = rendered("http://a.example").unwrap();
        let b = rendered("http://a.example").unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not rebuilt");
        let doc: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(doc["servers"][0]["url"], "http://a.example");
        assert!(doc["paths"]["/health/live"]["get"].is_object());
        let other: Value = serde_json::from_slice(&rendered("http://b.example").unwrap()).unwrap();
        assert_eq!(other["servers"][0]["url"], "http://b.example");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        out
    }
}
