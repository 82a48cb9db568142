//! Extractors whose rejections use the JSON error shape, and the client's address.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::state::AppState;

/// `Json<T>` whose failures are `ApiError`s (400 malformed/invalid, 413 too large, 415 content type).
/// A NUL character anywhere in the body's strings or keys is a 400 `invalid_text` (PostgreSQL
/// cannot store it, SPEC §9).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        crate::domain::input::json("", &value).map_err(|e| {
            ApiError::bad_request(e.code, format!("invalid request body: {}", e.message))
        })?;
        T::deserialize(value).map(Self).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("invalid request body: {e}"))
        })
    }
}

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Middleware: a NUL character (`%00`) in the path or the query is a 400 `invalid_text` before any
/// handler sees it (PostgreSQL cannot store or compare it; SPEC §9: NUL anywhere is a 4xx).
pub async fn reject_nul_in_uri(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return ApiError::bad_request(
            "invalid_text",
            "the path and query must not contain NUL characters (%00)",
        )
        .into_response();
    }
    next.run(request).await
}

/// `Path<T>` whose failures are `ApiError`s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// `Query<T>` whose failures are `ApiError`s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

/// The caller's IP: the peer address, or, when the peer is one of `TRUSTED_PROXIES`, the
/// nearest `X-Forwarded-For` hop that is not a trusted proxy itself (hops further left are the
/// client's own claims). `None` without a peer address (in-process tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(Self(peer.map(|peer| {
            client_ip(peer, forwarded, &state.config.server.limits.trusted_proxies)
        })))
    }
}

/// The client behind `peer`: walks `X-Forwarded-For` from the right while the hop is trusted.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // Garbage from the proxy's side: stop at the last address we could trust.
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// The key a per-client limit counts under: the IPv4 address, or the IPv6 /64 (one subscriber's
/// allocation; a host picks any address in it at will).
pub fn rate_limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;
    use crate::api::error::ErrorBody;

    #[derive(Debug, Deserialize, serde::Serialize)]
    struct In {
        name: String,
        count: u32,
    }

    async fn echo(AppJson(body): AppJson<In>) -> AppJson<In> {
        AppJson(body)
    }

    async fn call(content_type: &str, body: impl Into<Body>) -> (StatusCode, Option<ErrorBody>) {
        let app = Router::new()
            .route("/", post(echo))
            .layer(DefaultBodyLimit::max(64));
        let request = Request::post("/")
            .header("content-type", content_type)
            .body(body.into())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).ok())
    }

    #[tokio::test]
    async fn json_failures_use_the_error_shape() {
        let ok = call("application/json", r#"{"name":"a","count":1}"#).await;
        assert_eq!(ok.0, StatusCode::OK);
        for (content_type, body, status, code) in [
            (
                "application/json",
                "{",
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                "application/json",
                r#"{"name":"a","count":"x"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                "application/json",
                r#"{"name":"a"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                "application/json",
                r#"{"name":"a","count":-1}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                "text/plain",
                r#"{"name":"a","count":1}"#,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
        ] {
            let (got, body) = call(content_type, body).await;
            assert_eq!(got, status, "{body:?}");
            assert_eq!(body.unwrap().code, code);
        }
        let big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(200));
        let (got, body) = call("application/json", big).await;
        assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body.unwrap().code, "payload_too_large");
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let nets = |list: &[&str]| -> Vec<ipnet::IpNet> {
            list.iter().map(|n| n.parse().unwrap()).collect()
        };
        let none = nets(&[]);
        let caddy = nets(&["172.30.0.0/24"]);
        let two = nets(&["172.30.0.0/24", "10.0.0.1/32"]);
        for (peer, header, trusted, want) in [
            // Nobody trusted: a private or loopback peer is the client, whatever it claims.
            ("127.0.0.1", "203.0.113.9", &none, "127.0.0.1"),
            ("10.0.0.1", "203.0.113.9", &none, "10.0.0.1"),
            // The proxy's own hop is believed; the client's claims further left are not.
            ("172.30.0.2", "203.0.113.9", &caddy, "203.0.113.9"),
            ("172.30.0.2", "1.1.1.1, 203.0.113.9", &caddy, "203.0.113.9"),
            ("172.30.0.2", "", &caddy, "172.30.0.2"),
            ("172.30.0.2", "garbage", &caddy, "172.30.0.2"),
            // An untrusted peer sending the header is still just the peer.
            ("203.0.113.5", "1.1.1.1", &caddy, "203.0.113.5"),
            // Chained trusted proxies are skipped.
            ("172.30.0.2", "198.51.100.7, 10.0.0.1", &two, "198.51.100.7"),
            // A mapped IPv4 peer (dual-stack listener) is its IPv4 address.
            ("::ffff:172.30.0.2", "2001:db8::1", &caddy, "2001:db8::1"),
        ] {
            let got = client_ip(ip(peer), std::iter::once(header), trusted);
            assert_eq!(got, ip(want), "{peer} {header:?}");
        }
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let key = |s: &str| rate_limit_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::ffff"), key("2001:db8:1:2:abcd::1"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
    }
}
