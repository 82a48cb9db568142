//! The HTTP/1.1 listener in front of the router, and its limits against slow and greedy clients:
//! hyper bounds the time and size of a request head; on top, at most `MAX_CONNECTIONS` connections
//! are served at once and one address holds at most `MAX_CONNECTIONS_PER_IP` of them
//! (`TRUSTED_PROXIES` exempt: a proxy carries many clients), the head is capped at exactly
//! `MAX_HEADER_BYTES` with the JSON error body, and an answer given without reading the request's
//! body (decided from the headers: 401, 404, 413, 429, …) closes the connection at once instead of
//! waiting for the rest of that body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::error::ApiError;
use super::extract::rate_limit_key;
use crate::config::HttpLimits;

/// Connections refused over the per-address cap that may be answering at once; more are closed
/// without an answer.
const REFUSALS_AT_ONCE: usize = 1024;
/// How long a refused connection is kept to deliver its 429 (reading what the client sends, so
/// closing does not reset the answer away).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// What a refused connection is told to wait, in seconds.
const REFUSAL_RETRY_AFTER_SECS: u64 = 1;

/// Serves HTTP/1.1 on `listener` within `limits`. On `shutdown` it stops accepting, lets every
/// connection finish its request in flight, and gives up on stragglers after `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    drain: Duration,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Hyper refuses a head that does not fit (its own 431, given the JSON body by
        // `JsonParseErrors`); one that fits in a larger read is measured exactly in `serve_one`.
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let http = Arc::new(http);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(
        limits.max_connections_per_ip,
        limits.trusted_proxies.clone(),
    );
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let connections = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Some(address_slot) = per_address.enter(peer.ip()) else {
            drop(permit);
            refuse(stream, &refusals);
            continue;
        };
        let connection = serve_connection(
            Arc::clone(&http),
            stream,
            peer,
            app.clone(),
            (limits.keep_alive_timeout, limits.max_header_bytes),
            shutdown.clone(),
            hard_stop.clone(),
        );
        connections.spawn(async move {
            connection.await;
            drop(address_slot);
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain period; closing them"
        );
        hard_stop.cancel();
        connections.wait().await;
    }
    Ok(())
}

// ---------------------------------------------------------------- connections per address

/// Open connections per client address.
type OpenCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Open connections per client address (IPv6: per /64, like the rate limits).
struct PerAddress {
    limit: usize,
    trusted: Vec<ipnet::IpNet>,
    open: OpenCounts,
}

impl PerAddress {
    fn new(limit: usize, trusted: Vec<ipnet::IpNet>) -> Self {
        Self {
            limit,
            trusted,
            open: Arc::default(),
        }
    }

    /// Counts one more connection from `peer`; `None` when it already has `limit` open. Trusted
    /// proxies are not counted.
    fn enter(&self, peer: IpAddr) -> Option<AddressSlot> {
        let peer = peer.to_canonical();
        if self.trusted.iter().any(|net| net.contains(&peer)) {
            return Some(AddressSlot(None));
        }
        let key = rate_limit_key(peer);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Some((Arc::clone(&self.open), key))))
    }
}

/// One open connection of an address; uncounted when dropped.
struct AddressSlot(Option<(OpenCounts, IpAddr)>);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some((open, key)) = self.0.take() else {
            return;
        };
        let mut open = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// Answers a connection over its address's cap with a JSON 429 (`Retry-After`) and closes it,
/// without reading a request; under a flood of them, closes it without an answer.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let answer = raw_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "Too many open connections from this address; close some and retry.",
            Some(REFUSAL_RETRY_AFTER_SECS),
        );
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 2048];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// A complete HTTP/1.1 error response with the JSON error body, closing the connection.
fn raw_error(status: StatusCode, code: &str, message: &str, retry_after: Option<u64>) -> Vec<u8> {
    let body = serde_json::json!({ "error": message, "code": code }).to_string();
    let retry_after = retry_after.map_or_else(String::new, |s| format!("retry-after: {s}\r\n"));
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry_after}connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------- one connection

/// Requests in flight on one connection and when the last one ended (ms since `started`).
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
}

impl Activity {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves once no request has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        loop {
            let quiet_ms = self
                .elapsed_ms()
                .saturating_sub(self.last_done_ms.load(Ordering::Acquire));
            if self.in_flight.load(Ordering::Acquire) == 0 && quiet_ms >= idle_ms {
                return;
            }
            let wait = if self.in_flight.load(Ordering::Acquire) == 0 {
                idle_ms - quiet_ms
            } else {
                idle_ms
            };
            tokio::time::sleep(Duration::from_millis(wait.max(10))).await;
        }
    }
}

/// Marks a request in flight until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .last_done_ms
            .store(self.0.elapsed_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection (heads capped at `max_header_bytes`); it is closed once idle for
/// `keep_alive` (`KEEP_ALIVE_TIMEOUT_SECS`), at shutdown
/// after its request in flight, or at once on `hard_stop`.
async fn serve_connection(
    http: Arc<hyper::server::conn::http1::Builder>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    (keep_alive, max_header_bytes): (Duration, usize),
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_done_ms: AtomicU64::new(0),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::new(&activity);
            let app = app.clone();
            async move {
                let response = serve_one(app, request, peer, max_header_bytes).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let io = TokioIo::new(JsonParseErrors::new(stream));
    let mut connection = pin!(http.serve_connection(io, service));
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.idle_for(keep_alive), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = hard_stop.cancelled() => return,
        }
    }
}

/// One request: refused with a JSON 431 if its head is over the cap; otherwise the router's
/// answer, closing the connection when the answer came without reading the whole body.
async fn serve_one(
    app: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    max_header_bytes: usize,
) -> Response {
    if head_len(&request) > max_header_bytes {
        let mut response = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header_too_large",
            format!("The request line and headers are over {max_header_bytes} bytes."),
        )
        .into_response();
        close(&mut response);
        return response;
    }
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let has_body = !hyper::body::Body::is_end_stream(&body);
    let ended = Arc::new(AtomicBool::new(false));
    let body = Body::new(Watched {
        inner: body,
        ended: Arc::clone(&ended),
    });
    let Ok(mut response) = app.oneshot(Request::from_parts(parts, body)).await;
    if has_body && !ended.load(Ordering::Acquire) {
        // Answered from the headers (or part of the body): the rest is not waited for.
        close(&mut response);
    }
    response
}

fn close(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// The size of the request line and headers as sent (`Name: value` lines).
fn head_len<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let target = if uri.scheme().is_some() || uri.path_and_query().is_none() {
        uri.to_string().len()
    } else {
        uri.path_and_query().map_or(1, |pq| pq.as_str().len())
    };
    // "METHOD target HTTP/1.1\r\n"
    let line = request.method().as_str().len() + 1 + target + 1 + 8 + 2;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// The request body, noting when it has been read to its end.
struct Watched {
    inner: Incoming,
    ended: Arc<AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------- hyper's own error answers

/// The connection's socket, with hyper's own answers to a request it cannot parse (431 for a head
/// over `MAX_HEADER_BYTES`, 400, 414: a bare status line with no body) given the JSON error body.
struct JsonParseErrors<S> {
    inner: S,
    /// The replacement being written, how much of it is written, and the length of hyper's
    /// answer it stands for.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonParseErrors<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }

    /// Whether `buf` may be hyper's answer to an unparsable request (cheap: the status alone).
    fn may_be_parse_error(buf: &[u8]) -> bool {
        buf.starts_with(b"HTTP/1.") && matches!(buf.get(9..13), Some(b"431 " | b"414 " | b"400 "))
    }

    /// The JSON answer standing for `buf` if `buf` is hyper's bare answer to an unparsable request.
    fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
        if !Self::may_be_parse_error(buf) {
            return None;
        }
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        if head_end != buf.len() {
            return None;
        }
        let head = std::str::from_utf8(buf).ok()?.to_ascii_lowercase();
        if !head.contains("\r\ncontent-length: 0\r\n") || head.contains("\r\ncontent-type:") {
            return None;
        }
        let (status, code, message) = match head.get(..13)? {
            "http/1.1 431 " | "http/1.0 431 " => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                "The request line and headers are too large.",
            ),
            "http/1.1 414 " | "http/1.0 414 " => (
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "The request target is too long.",
            ),
            "http/1.1 400 " | "http/1.0 400 " => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request is not valid HTTP/1.1.",
            ),
            _ => return None,
        };
        Some(raw_error(status, code, message, None))
    }
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes the replacement under way; `Ready(Ok(n))` with the replaced answer's length once
    /// all of it is written.
    fn poll_replacing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, stands_for)) = &mut self.replacing {
            if *written == bytes.len() {
                let n = *stands_for;
                self.replacing = None;
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none()
            && let Some(json) = Self::replacement(buf)
        {
            self.replacing = Some((json, 0, buf.len()));
        }
        if self.replacing.is_some() {
            return self.poll_replacing(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.replacing.is_some() || first.is_some_and(|b| Self::may_be_parse_error(b)) {
            // Parse errors are a head alone: handled one slice at a time.
            return match first {
                Some(first) => self.poll_write(cx, first),
                None => Poll::Ready(Ok(0)),
            };
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_measured_as_sent() {
        let raw = "POST /v1/x?a=b HTTP/1.1\r\nhost: example\r\nx-a: 1\r\nx-a: 22\r\n\r\n";
        let request = Request::post("/v1/x?a=b")
            .header("host", "example")
            .header("x-a", "1")
            .header("x-a", "22")
            .body(())
            .unwrap();
        assert_eq!(head_len(&request), raw.len());
    }

    #[test]
    fn only_hypers_bare_error_answers_are_replaced() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 13:48:30 GMT\r\n\r\n";
        let json = JsonParseErrors::<()>::replacement(bare).unwrap();
        let text = String::from_utf8(json).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains(r#""code":"header_too_large""#), "{text}");
        // Ours (a JSON body follows) and any answer with a body pass through.
        let ours = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(JsonParseErrors::<()>::replacement(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(JsonParseErrors::<()>::replacement(ok).is_none());
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx";
        assert!(JsonParseErrors::<()>::replacement(with_body).is_none());
    }

    #[test]
    fn addresses_are_capped_except_trusted_proxies() {
        let trusted: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let per = PerAddress::new(2, vec![trusted]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = per.enter(a).unwrap();
        let _second = per.enter(a).unwrap();
        assert!(per.enter(a).is_none());
        // One /64 is one client.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let _x = per.enter(v6("2001:db8::1")).unwrap();
        let _y = per.enter(v6("2001:db8::2")).unwrap();
        assert!(per.enter(v6("2001:db8::ffff:3")).is_none());
        assert!(per.enter(v6("2001:db8:0:1::1")).is_some());
        drop(first);
        assert!(per.enter(a).is_some());
        let proxies: Vec<_> = (0..10).filter_map(|_| per.enter(v6("10.1.2.3"))).collect();
        assert_eq!(proxies.len(), 10);
    }
}
