//! Hostile clients at the HTTP edge (issue 11): metric label cardinality, slowloris, stalled
//! bodies, forwarded client addresses and one credential rule for every keyed route.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

/// Reads until the server closes the connection (or resets it); `None` if it is still open after
/// `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(got)
}

async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[sqlx::test]
async fn huge_custom_methods_do_not_grow_the_metrics(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.get("/health").await;
    let before = metrics_text(&app).await;
    for i in 0..40 {
        let method = format!("{}{i}", "X".repeat(8000));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for path in [
            "/health",
            "/v1/offer/aws-s3-storage-giftcard",
            "/no/such/route",
        ] {
            let response = app
                .client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_client_error(), "{}", response.status());
        }
    }
    let after = metrics_text(&app).await;
    assert!(!after.contains("XXXXXXXX"), "a raw method became a label");
    // Only the series of the routes hit here (other tests may share the process's recorder).
    let ours = |text: &str| -> usize {
        text.lines()
            .filter(|l| {
                l.contains(r#"path="/health""#)
                    || l.contains(r#"path="/v1/offer/{offer_id}""#)
                    || l.contains(r#"path="unmatched""#)
            })
            .map(str::len)
            .sum()
    };
    assert!(
        ours(&after) < ours(&before) + 16 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    let methods: std::collections::BTreeSet<&str> = after
        .lines()
        .filter_map(|l| l.split(r#"method=""#).nth(1)?.split('"').next())
        .collect();
    let known = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "other",
    ];
    assert!(methods.iter().all(|m| known.contains(m)), "{methods:?}");
    assert!(
        after.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"method="other""#)
            && l.contains(r#"path="/health""#)),
        "{after}"
    );
}

#[sqlx::test]
async fn half_sent_headers_are_cut_after_the_header_timeout(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[
            ("HEADER_READ_TIMEOUT_SECS", "1"),
            ("KEEP_ALIVE_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        read_until_closed(&mut stream, Duration::from_secs(6))
            .await
            .is_some(),
        "a half-sent header kept the connection open"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[sqlx::test]
async fn oversized_headers_are_refused(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[
            ("MAX_HEADER_BYTES", "16384"),
            ("HEADER_READ_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 64 * 1024));
    // The server may stop reading (and reset) before everything is written.
    let _ = stream.write_all(&request).await;
    let got = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let got = got.expect("a 64 KB unfinished header kept the connection open");
    if !got.is_empty() {
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    }
}

#[sqlx::test]
async fn idle_keep_alive_connections_are_closed(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[
            ("HEADER_READ_TIMEOUT_SECS", "60"),
            ("KEEP_ALIVE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut stream, Duration::from_secs(6))
        .await
        .expect("an idle keep-alive connection stayed open");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[sqlx::test]
async fn connections_over_the_limit_wait(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[("MAX_CONNECTIONS", "2"), ("HEADER_READ_TIMEOUT_SECS", "60")],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = || {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(1500))
            .build()
            .unwrap()
    };
    let third = fresh().get(app.url("/health")).send().await;
    assert!(
        third.is_err(),
        "a third connection was served: {:?}",
        third.map(|r| r.status())
    );
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fresh().get(app.url("/health")).send().await {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::OK);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never served: {e}"),
        }
    }
}

#[sqlx::test]
async fn stalled_bodies_are_cut_with_a_json_408(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[
            ("BODY_READ_TIMEOUT_SECS", "1"),
            ("REQUEST_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/checkout/initiate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"checkout_flow_id\": ",
        )
        .await
        .unwrap();
    let got = read_until_closed(&mut stream, Duration::from_secs(6))
        .await
        .expect("a stalled body held the request");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert!(body["error"].is_string(), "{body}");
}

/// Starts `count` checkouts with `{}` (a 400 after the limiter) from the given forwarded address.
async fn initiates(app: &TestApp, forwarded: &[&str]) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for ip in forwarded {
        let response = app
            .client
            .post(app.url("/v1/checkout/initiate"))
            .header("x-forwarded-for", *ip)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    statuses
}

#[sqlx::test]
async fn forwarding_headers_count_only_from_trusted_proxies(pool: PgPool) {
    let app = spawn_app_with(pool, &[("CHECKOUT_RATE_LIMIT_PER_MINUTE", "3")]).await;
    // No TRUSTED_PROXIES: a loopback peer's X-Forwarded-For is ignored; the peer is limited.
    let got = initiates(
        &app,
        &["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"],
    )
    .await;
    assert_eq!(got[3], StatusCode::TOO_MANY_REQUESTS, "{got:?}");
}

#[sqlx::test]
async fn trusted_proxies_forward_and_ipv6_is_limited_per_64(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        &[
            ("CHECKOUT_RATE_LIMIT_PER_MINUTE", "3"),
            ("TRUSTED_PROXIES", "10.9.0.0/16, 127.0.0.1"),
        ],
    )
    .await;
    // Distinct clients behind the proxy each get their own budget; a spoofed first hop is the
    // client's own claim, the proxy appends the address it saw.
    let got = initiates(
        &app,
        &[
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "1.2.3.4, 198.51.100.4",
            "9.9.9.9, 198.51.100.1",
        ],
    )
    .await;
    assert!(got.iter().all(|s| *s == StatusCode::BAD_REQUEST), "{got:?}");
    // Addresses of one /64 share one budget.
    let got = initiates(
        &app,
        &[
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff::3",
            "2001:db8:1:2:abcd::4",
        ],
    )
    .await;
    assert_eq!(got[3], StatusCode::TOO_MANY_REQUESTS, "{got:?}");
    // Another /64 is another client.
    let got = initiates(&app, &["2001:db8:1:3::1"]).await;
    assert_eq!(got[0], StatusCode::BAD_REQUEST, "{got:?}");
}

#[sqlx::test]
async fn metrics_accept_every_credential_form(pool: PgPool) {
    let token = "admin-token-for-tests-0123";
    let app = spawn_app_with(pool, &[("ADMIN_TOKEN", token)]).await;
    for (name, request) in [
        (
            "Bearer",
            app.client
                .get(app.url("/metrics"))
                .header("authorization", format!("Bearer {token}")),
        ),
        (
            "bearer",
            app.client
                .get(app.url("/metrics"))
                .header("authorization", format!("bearer {token}")),
        ),
        (
            "BEARER  ",
            app.client
                .get(app.url("/metrics"))
                .header("authorization", format!("BEARER  {token} ")),
        ),
        (
            "?auth=",
            app.client.get(app.url(&format!("/metrics?auth={token}"))),
        ),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
    for wrong in [
        format!("/metrics?auth={token}x"),
        "/metrics?auth=".to_owned(),
        "/metrics".to_owned(),
    ] {
        assert_error(
            &app.get(&wrong).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
}

#[sqlx::test]
async fn shutdown_drains_the_request_in_flight(pool: PgPool) {
    let mut app = spawn_app_with(pool, &[("BODY_READ_TIMEOUT_SECS", "30")]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/checkout/initiate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 2\r\n\r\n{",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connections once draining...
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(fresh.get(app.url("/health")).send().await.is_err());
    // ...but the request in flight is answered, then the connection closes and the server stops.
    stream.write_all(b"}").await.unwrap();
    let got = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the drained connection stayed open");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let server = tokio::time::timeout(Duration::from_secs(5), &mut app.server).await;
    assert!(matches!(server, Ok(Ok(Ok(())))), "{server:?}");
}
