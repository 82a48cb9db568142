//! The dashboard's pages and assets, built by `scripts/build-dashboard.sh` into `DASHBOARD_DIR`
//! (`dashboard/dist`; `/app/dashboard` in the Docker image): `GET /v1/dashboard/customer` and
//! `GET /v1/dashboard/vendor` answer the HTML (`no-store`), `GET /v1/dashboard/assets/<file>` the
//! hashed scripts and styles (cached for a year, immutable). Every answer carries a strict
//! Content-Security-Policy (no inline script, nothing from another origin) and
//! `Referrer-Policy: no-referrer` (the customer page's credentials never leave in a referrer).
//! Without a build the pages answer 503 with a message saying how to build it, never a 500.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Extension;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};

/// Scripts and styles only from this server; no inline script, no framing, no plugin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const HTML_CACHE: &str = "no-store";
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// The two pages, each one HTML file of the build.
#[derive(Debug, Clone, Copy)]
enum Page {
    Customer,
    Vendor,
}

impl Page {
    fn file(self) -> &'static str {
        match self {
            Self::Customer => "customer.html",
            Self::Vendor => "vendor.html",
        }
    }
}

/// Where the build is (`DASHBOARD_DIR`): an extension `api::router` puts on every request.
#[derive(Debug, Clone)]
pub struct DashboardDir(pub Arc<PathBuf>);

impl DashboardDir {
    pub fn new(dir: PathBuf) -> Self {
        Self(Arc::new(dir))
    }
}

/// The routes under `/v1/dashboard/`, serving the build in the [`DashboardDir`] extension.
pub fn router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(customer_page))
        .routes(routes!(vendor_page))
        .routes(routes!(dashboard_asset))
}

#[utoipa::path(
    get,
    path = "/v1/dashboard/customer",
    tag = "dashboard",
    summary = "The customer's page (HTML): balance, top-up, usage and ledger of one purchase",
    description = "The purchase id and customer key go in the URL's fragment, never to the server. `Cache-Control: no-store` and a strict Content-Security-Policy.",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 503, description = "The dashboard is not built in DASHBOARD_DIR; the message says how to build it (`dashboard_not_built`)", body = ErrorBody),
    )
)]
async fn customer_page(Extension(DashboardDir(dir)): Extension<DashboardDir>) -> Response {
    page(&dir, Page::Customer).await
}

#[utoipa::path(
    get,
    path = "/v1/dashboard/vendor",
    tag = "dashboard",
    summary = "The vendor's console (HTML) over the admin API",
    description = "The page asks for ADMIN_TOKEN and calls `/v1/admin/…` with it. `Cache-Control: no-store` and a strict Content-Security-Policy.",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 503, description = "The dashboard is not built in DASHBOARD_DIR; the message says how to build it (`dashboard_not_built`)", body = ErrorBody),
    )
)]
async fn vendor_page(Extension(DashboardDir(dir)): Extension<DashboardDir>) -> Response {
    page(&dir, Page::Vendor).await
}

/// A binary asset's body (documentation only): `{type: string, format: binary}`.
struct AssetBytes;

impl utoipa::PartialSchema for AssetBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for AssetBytes {}

#[utoipa::path(
    get,
    path = "/v1/dashboard/assets/{file}",
    tag = "dashboard",
    summary = "A hashed script, style, image or font of the dashboard's build (cached for a year, immutable)",
    params(("file" = String, Path, description = "A file name of the build's `assets/` (`name-HASH.ext`)")),
    responses(
        (status = 200, description = "The file, typed by its extension", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
            (AssetBytes = "image/png"),
            (AssetBytes = "image/x-icon"),
            (AssetBytes = "font/woff2"),
            (serde_json::Value = "application/json"),
        )),
        (status = 404, description = "No such asset, or not a plain asset name (`not_found`)", body = ErrorBody),
    )
)]
async fn dashboard_asset(
    Extension(DashboardDir(dir)): Extension<DashboardDir>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    asset(&dir, &file).await
}

fn with_headers(mut response: Response, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn not_built(dir: &Path) -> Response {
    let response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "dashboard_not_built",
        format!(
            "The dashboard is not built: {} has no pages. Run scripts/build-dashboard.sh \
             (npm ci and vite build in dashboard/), or set DASHBOARD_DIR to the folder of a build.",
            dir.display()
        ),
    )
    .into_response();
    with_headers(response, HTML_CACHE)
}

async fn page(dir: &Path, page: Page) -> Response {
    match tokio::fs::read(dir.join(page.file())).await {
        Ok(html) => with_headers(
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                html,
            )
                .into_response(),
            HTML_CACHE,
        ),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "dashboard page missing");
            not_built(dir)
        }
    }
}

/// The content type of a built asset by its extension; `None` for anything the build does not make.
fn content_type(file: &str) -> Option<&'static str> {
    let ext = file.rsplit_once('.')?.1;
    Some(match ext {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "map" | "json" => "application/json",
        _ => return None,
    })
}

/// An asset name as the build writes them (`name-HASH.ext`): no path separator, no dot-dot.
fn safe_name(file: &str) -> bool {
    !file.is_empty()
        && file.len() <= 200
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

async fn asset(dir: &Path, file: &str) -> Response {
    let missing = || {
        with_headers(
            ApiError::not_found("not_found", "No such dashboard asset").into_response(),
            HTML_CACHE,
        )
    };
    let (true, Some(kind)) = (safe_name(file), content_type(file)) else {
        return missing();
    };
    match tokio::fs::read(dir.join("assets").join(file)).await {
        Ok(bytes) => with_headers(
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
                bytes,
            )
                .into_response(),
            ASSET_CACHE,
        ),
        Err(_) => missing(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use axum::Router;

    use super::*;

    fn app(dir: PathBuf) -> Router {
        let (router, _) = router().split_for_parts();
        router.layer(Extension(DashboardDir::new(dir)))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "vs-dashboard-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        dir
    }

    async fn get(router: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn pages_are_no_store_with_a_strict_csp_and_assets_are_immutable() {
        let dir = temp_dir("built");
        std::fs::write(dir.join("customer.html"), "<!doctype html><p>customer").unwrap();
        std::fs::write(dir.join("vendor.html"), "<!doctype html><p>vendor").unwrap();
        std::fs::write(dir.join("assets/customer-AbC123.js"), "console.log(1)").unwrap();
        std::fs::write(dir.join("assets/style-x_1.css"), "p{}").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        let router = app(dir.clone());

        for (path, text) in [
            ("/v1/dashboard/customer", "customer"),
            ("/v1/dashboard/vendor", "vendor"),
        ] {
            let (status, headers, body) = get(&router, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(body.contains(text));
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        }

        let (status, headers, body) = get(&router, "/v1/dashboard/assets/customer-AbC123.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "console.log(1)");
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let (_, headers, _) = get(&router, "/v1/dashboard/assets/style-x_1.css").await;
        assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");

        // Nothing outside assets/, no unknown asset, no traversal.
        for path in [
            "/v1/dashboard/assets/nope-1.js",
            "/v1/dashboard/assets/..%2Fsecret.txt",
            "/v1/dashboard/assets/secret.txt",
            "/v1/dashboard/assets/.hidden.js",
        ] {
            let (status, headers, body) = get(&router, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
            assert!(body.contains("\"code\":\"not_found\""), "{path}: {body}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn without_a_build_the_pages_say_how_to_build_it() {
        let dir = std::env::temp_dir().join(format!("vs-dashboard-none-{}", uuid::Uuid::new_v4()));
        let router = app(dir);
        for path in ["/v1/dashboard/customer", "/v1/dashboard/vendor"] {
            let (status, headers, body) = get(&router, path).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["code"], "dashboard_not_built");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("scripts/build-dashboard.sh")
            );
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        }
    }

    #[test]
    fn asset_names_are_plain_file_names() {
        assert!(safe_name("customer-B1x_9.js"));
        for bad in ["", "../x.js", "a/b.js", ".env", "a\\b.js", "a%2f.js"] {
            assert!(!safe_name(bad), "{bad}");
        }
        assert_eq!(content_type("x.exe"), None);
        assert_eq!(content_type("noext"), None);
    }
}
