//! `GET /v1/openapi.json`: the OpenAPI 3.1 document, generated from the code with `utoipa`. Routes
//! come from the routers themselves (`utoipa_axum::OpenApiRouter` + `routes!`: a handler is routed
//! at the path and method its `#[utoipa::path]` declares, so the document cannot list a route the
//! server does not have, or miss one registered that way); request and response schemas come from
//! the Rust types (`#[derive(utoipa::ToSchema)]`, `IntoParams`). [`documented`] builds the routers
//! and the document together; [`api::router`](super::router) serialises the document once per
//! application and serves those bytes. `vendor-server openapi` prints it (without `servers`), and
//! `openapi.json` at the repository root is its committed snapshot: a test fails when the two differ
//! (`UPDATE_OPENAPI_SNAPSHOT=1 cargo test --lib openapi` rewrites it).
//!
//! # How to document a route
//!
//! 1. Annotate the handler with `#[utoipa::path(<method>, path = "/v1/…", tag = "…", summary = "…",
//!    params(…), request_body = T, responses(…), security(…))]`, and register it in its module's
//!    `OpenApiRouter` with `.routes(routes!(handler))` — never with a plain `.route(…)` (a test scans
//!    `src/api` for those and fails when their path is not in the document).
//! 2. Derive `utoipa::ToSchema` on every request and response type (and `IntoParams` on query
//!    structs); a domain type that goes on the wire gets the derive where it is defined. Doc comments
//!    become descriptions; `#[schema(value_type = …)]` or `schema_with` where the Rust type does not
//!    say what the JSON looks like (e.g. `serde_json::Value`).
//! 3. List in `responses(…)` every status the handler and its extractors can answer, with
//!    `body = ErrorBody` (the `{error, code}` shape) and the codes in the description: 400 for bad
//!    input, 401 for keyed routes, 404/409 from the domain errors (see `error.rs` for what maps to
//!    what), 415 for a JSON body (`AppJson`), 429 for rate-limited routes, 503 for routes that touch
//!    the database or a chain. What the layers add to every route (400 `invalid_text` for a NUL in
//!    the path or query, 408 `request_timeout`, 413 `payload_too_large` on routes with a body, 500
//!    `internal_error`) is added by [`layer_responses`], not repeated per handler.
//! 4. Keyed routes name their scheme: `security(("customer_key" = []), ("customer_key_query" =
//!    []))`, `billing_token…`, `admin_token…` (see [`SecuritySchemes`]).
//! 5. Run `UPDATE_OPENAPI_SNAPSHOT=1 cargo test --lib openapi` and commit `openapi.json`; the
//!    integration tests check every real response against the document (tests/api/helpers.rs).

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vendor-server",
        description = "OfficeX appstore vendor API: offers, checkout with stablecoin deposits, prepaid \
purchases and metering, and a Gemini gateway. Every error outside the gateway is \
{\"error\": \"<message>\", \"code\": \"<stable_code>\"}; the gateway answers in Google's error shape."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "operations", description = "Health, metrics and this document"),
        (name = "appstore", description = "Curated lists and offers"),
        (name = "checkout", description = "Checkout with a stablecoin deposit (`@officexapp/types` vendor.ts)"),
        (name = "purchases", description = "A purchase as its customer sees it"),
        (name = "metering", description = "Usage metered by the vendor's servers"),
        (name = "refunds", description = "Unused balance and unclaimed payments back to the customer"),
        (name = "gemini", description = "Google's Gemini REST API, metered per purchase"),
        (name = "admin", description = "The vendor's console API (an operator's token or `ADMIN_TOKEN`, the bootstrap owner; every route answers 404 when neither exists): purchases, adjustments, status actions, sweeps, notifications, cost imports, billing tokens, operators, daily stats and the audit log. Roles: viewers read (GET), operators also act (every other method), owners also manage operators and billing tokens; a lower role is 403 `forbidden_role`. Every action is audited with its operator and idempotent per `Idempotency-Key`."),
        (name = "dashboard", description = "Pages for people"),
    )
)]
struct ApiDoc;

/// The credentials of keyed routes. A key goes in `Authorization: Bearer <key>` or, where a header
/// cannot be set, in the query (`?auth=` on the API, `?key=` on the Gemini gateway, as Google).
pub struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        let query = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, scheme) in [
            (
                "customer_key",
                bearer("The purchase's customer key (`vsc_…`, from the receipt)"),
            ),
            (
                "customer_key_query",
                query("auth", "The customer key, when it cannot go in a header"),
            ),
            (
                "billing_token",
                bearer("A vendor-wide billing token (`vst_…`, from `vendor-server tokens create`)"),
            ),
            (
                "billing_token_query",
                query("auth", "The billing token, when it cannot go in a header"),
            ),
            (
                "admin_token",
                bearer(
                    "An operator's token (`vso_…`, from `vendor-server operators create`) or \
                     ADMIN_TOKEN (the bootstrap owner); the route's role applies",
                ),
            ),
            (
                "admin_token_query",
                query(
                    "auth",
                    "An operator's token or ADMIN_TOKEN, when it cannot go in a header",
                ),
            ),
            (
                "gemini_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "x-goog-api-key",
                    "The purchase's gateway key (`vsg_…`), as with Google",
                ))),
            ),
            (
                "gemini_key_query",
                query("key", "The gateway key, when not sent in x-goog-api-key"),
            ),
            (
                "gemini_bearer",
                bearer("The gateway key (`vsg_…`), as OpenAI's clients send their API key"),
            ),
        ] {
            components.security_schemes.insert(name.to_owned(), scheme);
        }
    }
}

/// The responses the layers of `api::router` add to every route outside the Gemini gateway (which
/// is merged outside them), unless the handler documents the status itself.
fn layer_responses(doc: &mut utoipa::openapi::OpenApi) {
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "Error",
                        ))))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        if super::gemini::is_gateway_path(path) {
            continue;
        }
        let admin = path.starts_with("/v1/admin/");
        for (method, operation) in [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ]
        .into_iter()
        .filter_map(|(m, o)| Some((m, o.as_mut()?)))
        {
            let has_body = operation.request_body.is_some();
            // The admin gate's role check (`api::admin::gate`), documented from the same rule.
            let role = admin.then(|| crate::admin::operators::required_role(&method, path));
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description));
            };
            add(
                "400",
                "A NUL character (`%00`) in the path or query (`invalid_text`), or a path segment \
                 that is not UTF-8 (`invalid_path`)",
            );
            add(
                "408",
                "The request did not complete within REQUEST_TIMEOUT_SECS, or its body stalled \
                 (`request_timeout`)",
            );
            if has_body {
                add(
                    "413",
                    "The body is larger than BODY_LIMIT_BYTES (`payload_too_large`)",
                );
            }
            add(
                "500",
                "Internal error (`internal_error`); logged with its cause, never shown",
            );
            if let Some(role) = role {
                add(
                    "403",
                    &format!(
                        "Needs the `{}` role; the signed-in operator's is lower (`forbidden_role`)",
                        role.as_str()
                    ),
                );
            }
        }
    }
}

/// The routers of every resource with the document describing them: the API's routes (under the
/// JSON-error layers) and the Gemini gateway's (merged outside them).
pub fn documented() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(super::health::router())
        .merge(super::appstore::router())
        .merge(super::offers::router())
        .merge(router())
        .merge(super::metrics::router())
        .merge(super::checkout::router())
        .merge(super::purchases::router())
        .merge(super::refunds::router())
        .merge(super::credentials::router())
        .merge(super::s3_usage::router())
        .merge(super::metering::router())
        .merge(super::admin::router())
        .merge(super::dashboard::router())
        .split_for_parts();
    let (gemini, gemini_doc) = super::gemini::router().split_for_parts();
    doc.merge(gemini_doc);
    layer_responses(&mut doc);
    (api, gemini, doc)
}

/// The document (without `servers`), as `vendor-server openapi` prints it and the snapshot holds.
pub fn document() -> utoipa::openapi::OpenApi {
    documented().2
}

/// The document as `vendor-server openapi` prints it and `openapi.json` holds it: pretty JSON with a
/// final newline, without `servers`.
pub fn pretty() -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(&document())?;
    text.push('\n');
    Ok(text)
}

/// The document as served: with this server's public URL in `servers`, serialised once.
pub fn render(
    mut doc: utoipa::openapi::OpenApi,
    public_base_url: &str,
) -> Result<Bytes, serde_json::Error> {
    doc.servers = Some(vec![utoipa::openapi::Server::new(public_base_url)]);
    serde_json::to_vec(&doc).map(Bytes::from)
}

/// The serialised document an application serves (built once in `api::router`; `None` if it could
/// not be serialised, answered with a 500).
#[derive(Clone)]
pub struct Served(pub Option<Bytes>);

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi(
    Extension(Served(body)): Extension<Served>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no OpenAPI document")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot at the repository root.
    const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

    /// Wire changes are visible in review: the committed snapshot is the generated document.
    #[test]
    fn the_snapshot_is_the_generated_document() {
        let generated = pretty().unwrap();
        if std::env::var_os("UPDATE_OPENAPI_SNAPSHOT").is_some() {
            std::fs::write(SNAPSHOT, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
        if committed != generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
                + 1;
            panic!(
                "openapi.json differs from the document generated from the code (first at line \
                 {line}). If the wire change is intended, regenerate the snapshot and commit it:\n  \
                 UPDATE_OPENAPI_SNAPSHOT=1 cargo test --lib openapi\n  (or: vendor-server openapi > \
                 openapi.json)"
            );
        }
    }

    /// Every `.route("<path>", <method>(…))` left in src/api (a route registered without
    /// `routes!`) is documented with that method.
    #[test]
    fn every_route_is_documented() {
        let doc = serde_json::to_value(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 15, "only {} paths", paths.len());
        let mut missing = Vec::new();
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
                // The methods chained on this route: `get(h).post(h)`.
                let call = rest.trim_start_matches([',', ' ']);
                let call = call.split(".route(").next().unwrap_or(call);
                for method in ["get", "post", "put", "delete", "patch"] {
                    if (call.starts_with(&format!("{method}("))
                        || call.contains(&format!(").{method}(")))
                        && paths.get(path).and_then(|p| p.get(method)).is_none()
                    {
                        missing.push(format!("{} {path}", method.to_uppercase()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document (register them with `routes!` and a \
             #[utoipa::path]): {missing:?}"
        );
    }

    /// Every operation lists its error statuses with a JSON body (Google's shape on the gateway).
    #[test]
    fn every_operation_documents_its_errors() {
        let doc = serde_json::to_value(document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                // 200, or 201 where the route creates something (`POST /v1/admin/tokens`).
                assert!(
                    responses.contains_key("200") || responses.contains_key("201"),
                    "{method} {path}: no 200 or 201"
                );
                for (status, response) in responses {
                    if status.starts_with('2') {
                        continue;
                    }
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    let want = if path.starts_with("/v1beta/openai/") {
                        if status == "default" {
                            continue;
                        }
                        "#/components/schemas/OpenAiError"
                    } else if crate::api::gemini::is_gateway_path(path) {
                        "#/components/schemas/GoogleError"
                    } else {
                        "#/components/schemas/Error"
                    };
                    assert_eq!(schema, want, "{method} {path} {status}");
                }
            }
        }
    }

    /// Clients generated from the document (openapi-typescript, Schemathesis) need one
    /// `operationId` per operation; utoipa takes the handler's name, so two handlers of the same
    /// name need an explicit `operation_id`.
    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut seen = std::collections::HashMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(!id.is_empty(), "{method} {path}: no operationId");
                if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                    panic!("operationId {id:?} of {method} {path} is also {other}'s");
                }
            }
        }
    }

    #[test]
    fn the_served_document_names_its_server() {
        let body = render(document(), "http://a.example").unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "http://a.example");
        assert!(doc["paths"]["/health/live"]["get"].is_object());
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
