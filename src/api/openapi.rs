//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of every route (kept complete by a test that
//! compares it with the routes registered in `src/api`). The document is assembled from fragments in
//! `src/api/openapi/`: `base.json` (info, shared schemas) plus one file per resource, each holding
//! `paths` and `components.schemas` that are merged into the base.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::Value;

use super::error::ApiError;
use super::extract::AppJson;
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

async fn openapi(State(state): State<AppState>) -> Result<AppJson<Value>, ApiError> {
    let mut doc = document().map_err(|e| ApiError::Internal(e.into()))?;
    doc["servers"] = serde_json::json!([{ "url": state.config.server.public_base_url }]);
    Ok(AppJson(doc))
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
