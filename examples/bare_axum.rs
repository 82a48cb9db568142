//! A bare axum route (`GET /` answers "ok"), the baseline `scripts/bench-read.sh` compares the
//! server's read routes with. Listens on `BARE_AXUM_ADDR` (default 127.0.0.1:3098).

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BARE_AXUM_ADDR").unwrap_or_else(|_| "127.0.0.1:3098".into());
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
