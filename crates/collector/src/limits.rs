//! Bounds on what any client, with or without a key, can make the collector spend: open
//! connections, requests in flight, time to send headers and bodies, and memory to parse JSON.
//!
//! [`serve`] is the accept loop (HTTP/1.1 only): past `max_connections` a connection is answered
//! `503` with `Retry-After` and closed at once; each connection must send complete request
//! headers within `header_timeout`, which also bounds how long an idle keep-alive connection is
//! kept. [`limit_in_flight`] answers `503` past `max_in_flight` requests. Bodies must arrive
//! within `body_timeout` (`408`), and a JSON body is parsed only after its estimated parse cost
//! (at most [`JSON_COST_MULTIPLE`] × its size, else `413`) fits in the shared
//! `json_memory_budget` (else `503` after a short wait).

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    Router,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpListener,
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tower::ServiceExt;

use crate::{error::ApiError, AppState};

#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Requests being handled at once; more are answered 503.
    pub max_in_flight: usize,
    /// Time to send a request's headers, counted from the connection's start or the end of the
    /// previous response (so it is also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Time to send a whole request body.
    pub body_timeout: Duration,
    /// Largest request line plus headers, in bytes.
    pub max_header_bytes: usize,
    /// Bytes of JSON bodies being read and parsed at once, counting each body's estimated
    /// parse cost.
    pub json_memory_budget: usize,
    /// Failed key checks one client address may make per minute; past them its failing
    /// requests get 429 for the rest of the minute. Requests with a valid key still proceed.
    pub auth_failures_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_in_flight: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            json_memory_budget: 256 * 1024 * 1024,
            auth_failures_per_minute: 20,
        }
    }
}

/// A body's estimated parse cost may be at most this multiple of its size (plus
/// [`JSON_COST_FLOOR`]); denser bodies get 413.
pub const JSON_COST_MULTIPLE: usize = 12;
/// Parse cost every body may have regardless of its size.
pub const JSON_COST_FLOOR: usize = 8 * 1024 * 1024;
/// How long a request waits for room in the JSON memory budget before it gets 503.
const BUDGET_WAIT: Duration = Duration::from_secs(5);

/// The per-process state behind the limits.
pub struct LimitState {
    pub limits: Limits,
    in_flight: Arc<Semaphore>,
    /// Permits are KiB of the JSON memory budget.
    json_budget: Arc<Semaphore>,
    json_budget_kib: usize,
}

impl LimitState {
    pub fn new(limits: Limits) -> Self {
        let kib = (limits.json_memory_budget / 1024).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            json_budget: Arc::new(Semaphore::new(kib)),
            json_budget_kib: kib,
            limits,
        }
    }

    fn budget_kib(&self, bytes: usize) -> usize {
        bytes.div_ceil(1024).clamp(1, self.json_budget_kib)
    }

    /// Reserves `bytes` of the JSON memory budget, waiting a little for room. A request waits
    /// here holding none of the budget.
    pub async fn reserve_json(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let kib = self.budget_kib(bytes);
        let permits = u32::try_from(kib).unwrap_or(u32::MAX);
        match tokio::time::timeout(
            BUDGET_WAIT,
            self.json_budget.clone().acquire_many_owned(permits),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::Unavailable(
                "the server is busy parsing other requests; retry later".into(),
            )),
        }
    }
}

impl LimitState {
    /// Turns the reservation `held` (a body's declared size, taken while it was read) into one
    /// of `bytes` (its parse cost). Room is taken at once if there is some; otherwise `held` is
    /// given back first and the whole `bytes` is waited for in one reservation. A waiting request
    /// therefore never holds part of the budget while it waits for more (no hold-and-wait): the
    /// requests that hold the budget are reading (bounded by the body timeout) or parsing, and
    /// both finish.
    pub async fn grow_json(
        &self,
        mut held: OwnedSemaphorePermit,
        bytes: usize,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        let want = self.budget_kib(bytes);
        let have = held.num_permits();
        if have >= want {
            // A body shorter than declared (or without a Content-Length) gives the rest back.
            drop(held.split(have - want));
            return Ok(held);
        }
        let more = u32::try_from(want - have).unwrap_or(u32::MAX);
        match self.json_budget.clone().try_acquire_many_owned(more) {
            Ok(extra) => {
                held.merge(extra);
                Ok(held)
            }
            Err(_) => {
                drop(held);
                self.reserve_json(bytes).await
            }
        }
    }
}

/// Answers 503 with `Retry-After` past `max_in_flight` requests.
pub async fn limit_in_flight(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.limits.in_flight.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(_) => ApiError::Unavailable(format!(
            "more than {} requests in flight; retry later",
            state.limits.limits.max_in_flight
        ))
        .into_response(),
    }
}

/// Upper estimate, in bytes, of the heap a `serde_json::Value` parsed from `bytes` takes, from
/// one pass over the text: every value costs a `Value` slot with room to grow, every object an
/// index map (hash table and entry vector), every member an entry and a key allocation, and
/// string contents their length. The constants are checked against a counting allocator in
/// `tests/json_budget.rs`; typed bodies (structs instead of maps) cost less.
pub fn json_parse_cost(bytes: &[u8]) -> usize {
    const PER_VALUE: usize = 64;
    const PER_OBJECT: usize = 640;
    const PER_MEMBER: usize = 96;
    let (mut values, mut objects, mut members) = (1usize, 0usize, 0usize);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'"' => i = string_end(bytes, i),
            b',' | b'[' => values += 1,
            b'{' => {
                values += 1;
                objects += 1;
            }
            b':' => members += 1,
            _ => {}
        }
    }
    values
        .saturating_mul(PER_VALUE)
        .saturating_add(objects.saturating_mul(PER_OBJECT))
        .saturating_add(members.saturating_mul(PER_MEMBER))
        .saturating_add(bytes.len())
}

/// The index just past the closing quote of the string whose contents start at `i` (or the end
/// of `bytes`), skipping escapes; jumps from quote or backslash to the next, so long string
/// values (tool output) cost a vectorized scan, not a branch per byte.
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    while let Some(k) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
        i += k + 1;
        if bytes[i - 1] == b'"' {
            return i;
        }
        i = (i + 1).min(bytes.len());
    }
    bytes.len()
}

/// Refuses a body whose parse would cost more than the stated multiple of its size.
pub fn check_json_cost(bytes: &[u8]) -> Result<usize, ApiError> {
    let cost = json_parse_cost(bytes);
    let allowed = bytes
        .len()
        .saturating_mul(JSON_COST_MULTIPLE)
        .saturating_add(JSON_COST_FLOOR);
    if cost > allowed {
        return Err(ApiError::PayloadTooDense(format!(
            "request body is too dense to parse: {} bytes of JSON would take about {} MiB \
             (at most {JSON_COST_MULTIPLE} times the body size is accepted); send fewer, larger \
             values or split the batch",
            bytes.len(),
            cost / (1024 * 1024)
        )));
    }
    Ok(cost)
}

const BUSY_BODY: &str = r#"{"error":"too many open connections; retry later"}"#;

/// The whole answer past `max_connections`; its `Content-Length` is computed from the body.
fn busy_response() -> &'static [u8] {
    static RESPONSE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    RESPONSE.get_or_init(|| {
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY_BODY}",
            BUSY_BODY.len()
        )
        .into_bytes()
    })
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then stops accepting,
/// lets each connection finish its request in flight, and returns when all are closed.
/// Requests carry `ConnectInfo<SocketAddr>` (used to throttle failed key checks).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file handles and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // Never waits: whatever of the answer fits in the socket buffer is sent.
            let _ = stream.try_write(busy_response());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone().map_request(
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                req.map(axum::body::Body::new)
            },
        ));
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cost_counts_values_and_members_outside_strings() {
        assert_eq!(json_parse_cost(b"1"), 64 + 1);
        let dense = b"[1,1,1,1]";
        assert_eq!(json_parse_cost(dense), 5 * 64 + dense.len());
        let members = br#"{"a":1,"b":2}"#;
        assert_eq!(
            json_parse_cost(members),
            3 * 64 + 640 + 2 * 96 + members.len()
        );
        // Structure inside strings costs nothing extra.
        let text = br#"{"a":"[,{:}\"],"}"#;
        assert_eq!(json_parse_cost(text), 2 * 64 + 640 + 96 + text.len());
    }

    /// The estimate as one branch per byte: what the vectorized string skip must equal.
    fn reference_cost(bytes: &[u8]) -> usize {
        let (mut values, mut objects, mut members) = (1usize, 0usize, 0usize);
        let (mut in_string, mut escaped) = (false, false);
        for &b in bytes {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b',' | b'[' => values += 1,
                b'{' => (values, objects) = (values + 1, objects + 1),
                b':' => members += 1,
                _ => {}
            }
        }
        values * 64 + objects * 640 + members * 96 + bytes.len()
    }

    #[test]
    fn the_string_skip_agrees_with_a_byte_by_byte_scan() {
        // Every string over a small alphabet of structure, quotes and escapes, up to length 7,
        // including unterminated strings and a backslash as the last byte.
        let alphabet = [b'"', b'\\', b',', b'{', b':', b'[', b'x'];
        let mut checked = 0;
        for len in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[n % alphabet.len()];
                        n /= alphabet.len();
                        b
                    })
                    .collect();
                assert_eq!(
                    json_parse_cost(&text),
                    reference_cost(&text),
                    "{:?}",
                    String::from_utf8_lossy(&text)
                );
                checked += 1;
            }
        }
        assert_eq!(checked, (0..=7).map(|l| 7usize.pow(l)).sum::<usize>());
    }

    #[test]
    fn the_busy_answer_is_well_formed_http_with_a_json_body() {
        let text = std::str::from_utf8(busy_response()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("too many"));
        assert!(head.contains("\r\nretry-after: 1\r\n"));
    }

    #[test]
    fn dense_bodies_are_refused_and_ordinary_ones_pass() {
        let ordinary = serde_json::to_vec(&serde_json::json!({
            "steps": (0..2000).map(|i| serde_json::json!({
                "stepNumber": i, "toolName": "Bash",
                "toolInput": {"command": "ls -la /tmp"}, "toolOutput": "x".repeat(200)
            })).collect::<Vec<_>>()
        }))
        .unwrap();
        assert!(check_json_cost(&ordinary).is_ok());
        let mut dense = b"[".to_vec();
        dense.extend(std::iter::repeat_n(&b"1,"[..], 4_000_000).flatten());
        dense.extend(b"1]");
        assert!(matches!(
            check_json_cost(&dense),
            Err(ApiError::PayloadTooDense(_))
        ));
    }
}
