//! Prometheus metrics at `GET /metrics` (text format 0.0.4): requests by route and status,
//! latency histogram by route, ingest counters and database pool use. Routes are labelled by
//! their template (`/api/trajectories/{id}/steps/batch`), so label cardinality stays bounded.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Route label for requests that matched no route (bounded: never the raw path).
pub const UNMATCHED: &str = "unmatched";

/// The method label: one of a fixed set, so made-up methods cannot grow the metrics.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("OTHER")
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub steps_ingested: AtomicU64,
    pub trajectories_started: AtomicU64,
    pub trajectories_completed: AtomicU64,
}

/// The matched route template, handed from the inner router to the outer middleware.
#[derive(Clone)]
pub struct RouteLabel(pub String);

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let key = (method_label(method).to_string(), route.to_string(), status);
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry(key)
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().expect("metrics lock");
        let h = latency.entry(route.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn render(
        &self,
        pool: lightning_store::PoolStatus,
        group: lightning_store::GroupCommitStats,
    ) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP lightning_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE lightning_http_requests_total counter\n");
        for ((method, route, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "lightning_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP lightning_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE lightning_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().expect("metrics lock").iter() {
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "lightning_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "lightning_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "lightning_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "lightning_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        for (name, help, value) in [
            (
                "lightning_steps_ingested_total",
                "Steps accepted in batches (after merging repeats).",
                &self.steps_ingested,
            ),
            (
                "lightning_trajectories_started_total",
                "Trajectory starts accepted (repeats included).",
                &self.trajectories_started,
            ),
            (
                "lightning_trajectories_completed_total",
                "Trajectory completions accepted.",
                &self.trajectories_completed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in [
            (
                "lightning_db_pool_connections",
                "Open database connections.",
                pool.size,
            ),
            (
                "lightning_db_pool_idle_connections",
                "Idle database connections.",
                pool.idle,
            ),
            (
                "lightning_db_pool_max_connections",
                "Most database connections allowed.",
                pool.max,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        render_group_commit(&mut out, group);
        out
    }
}

/// The step-batch group commit: mean steps per transaction = steps / transactions, writer
/// occupancy = rate(seconds) / writers.
fn render_group_commit(out: &mut String, g: lightning_store::GroupCommitStats) {
    let counters: [(&str, &str, f64); 5] = [
        (
            "lightning_group_commit_transactions_total",
            "Group-commit transactions run (a failed group's one-by-one retries included).",
            g.transactions as f64,
        ),
        (
            "lightning_group_commit_batches_total",
            "Step batches written through group commit.",
            g.batches as f64,
        ),
        (
            "lightning_group_commit_steps_total",
            "Steps in those batches.",
            g.steps as f64,
        ),
        (
            "lightning_group_commit_seconds_total",
            "Wall time inside group-commit transactions, summed over writers.",
            g.busy_seconds,
        ),
        (
            "lightning_group_commit_split_total",
            "Groups that failed and were retried batch by batch.",
            g.split_groups as f64,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let name = "lightning_group_commit_queued_steps";
    let _ = writeln!(
        out,
        "# HELP {name} Steps waiting for a group-commit writer.\n# TYPE {name} gauge\n{name} {}",
        g.queued_steps
    );
}

/// Inner layer (runs after routing): records which route template matched.
pub async fn label_route(req: Request, next: Next) -> Response {
    let label = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let mut response = next.run(req).await;
    // Nested routers: the innermost (most specific) label is set first and kept.
    if let (Some(label), None) = (label, response.extensions().get::<RouteLabel>()) {
        response.extensions_mut().insert(RouteLabel(label));
    }
    response
}

/// Prometheus text exposition; needs the API key like `/api`.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = crate::openapi::ErrorBody)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .render(state.store.pool_status(), state.store.group_commit_stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/api/stats", 200, Duration::from_millis(3));
        m.observe("GET", "/api/stats", 200, Duration::from_millis(30));
        m.observe("POST", UNMATCHED, 404, Duration::from_micros(10));
        m.observe("XYZZY", UNMATCHED, 405, Duration::from_micros(10));
        m.observe(&"Q".repeat(4096), UNMATCHED, 405, Duration::from_micros(10));
        m.steps_ingested.fetch_add(10, Ordering::Relaxed);
        let text = m.render(
            lightning_store::PoolStatus {
                size: 2,
                idle: 1,
                max: 10,
            },
            lightning_store::GroupCommitStats {
                transactions: 3,
                steps: 120,
                busy_seconds: 0.25,
                ..Default::default()
            },
        );
        assert!(text.contains("\nlightning_group_commit_transactions_total 3\n"));
        assert!(text.contains("\nlightning_group_commit_steps_total 120\n"));
        assert!(text.contains("\nlightning_group_commit_seconds_total 0.25\n"));
        assert!(text.contains("\nlightning_group_commit_queued_steps 0\n"));
        assert!(text.contains(
            "lightning_http_requests_total{method=\"GET\",route=\"/api/stats\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "lightning_http_requests_total{method=\"POST\",route=\"unmatched\",status=\"404\"} 1"
        ));
        assert!(text.contains(
            "lightning_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"405\"} 2"
        ));
        assert!(!text.contains("XYZZY"));
        assert!(text.contains(
            "lightning_http_request_duration_seconds_bucket{route=\"/api/stats\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "lightning_http_request_duration_seconds_bucket{route=\"/api/stats\",le=\"0.05\"} 2"
        ));
        assert!(
            text.contains("lightning_http_request_duration_seconds_count{route=\"/api/stats\"} 2")
        );
        assert!(text.contains("lightning_steps_ingested_total 10"));
        assert!(text.contains("lightning_db_pool_max_connections 10"));
    }
}
