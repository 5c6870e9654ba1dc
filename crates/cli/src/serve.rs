use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::Args;
use lightning_collector::{
    keys::check_configured_key, ApiKey, CollectorConfig, Dashboard, Limits, DEFAULT_BODY_LIMIT,
};

use crate::store_args::StoreArgs;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,

    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on (0 picks a free one; the address is logged).
    #[arg(long, env = "PORT", default_value_t = 4000)]
    port: u16,

    /// Bearer key required on every /api route. Unset: generated on first start and kept in
    /// <data-dir>/api_key.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Largest request body in bytes; larger ones are refused with 413.
    #[arg(long, env = "LIGHTNING_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,

    /// Serve the dashboard from this directory (the output of `npm run build` in dashboard/)
    /// instead of the build compiled into this binary; for working on the dashboard.
    #[arg(long, env = "LIGHTNING_DASHBOARD_DIR", value_name = "DIR")]
    dashboard_dir: Option<PathBuf>,

    /// Mark a running trajectory `abandoned` after this long without a step or completion
    /// (e.g. 90s, 30m, 2h; 0 turns the sweep off). A later step or completion corrects it.
    #[arg(long, env = "LIGHTNING_ABANDON_AFTER", default_value = "30m", value_parser = parse_duration)]
    abandon_after: std::time::Duration,

    /// Seconds between two passes of the automatic rollback guard over canaries started with
    /// --auto-rollback (0 turns the guard off in this collector).
    #[arg(long, env = "LIGHTNING_ROLLOUT_GUARD_INTERVAL", default_value_t = 60)]
    rollout_guard_interval: u64,

    #[command(flatten)]
    limits: LimitArgs,
}

/// Bounds on what any client can make the collector spend (docs/api.md, "Limits").
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Open connections; more are answered 503 with Retry-After and closed.
    #[arg(long, env = "LIGHTNING_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,

    /// Requests handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "LIGHTNING_MAX_IN_FLIGHT", default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,

    /// Seconds a client has to send a request's headers (also how long an idle keep-alive
    /// connection is kept).
    #[arg(long, env = "LIGHTNING_HEADER_TIMEOUT", default_value_t = Limits::default().header_timeout.as_secs())]
    header_timeout: u64,

    /// Seconds a client has to send a request body (408 after).
    #[arg(long, env = "LIGHTNING_BODY_TIMEOUT", default_value_t = Limits::default().body_timeout.as_secs())]
    body_timeout: u64,

    /// Bytes of JSON bodies read and parsed at once, counting their estimated parse cost.
    #[arg(long, env = "LIGHTNING_JSON_MEMORY_BUDGET", default_value_t = Limits::default().json_memory_budget)]
    json_memory_budget: usize,

    /// Failed key checks per client address per minute; past them its failing requests get 429
    /// for the minute (valid keys still proceed).
    #[arg(long, env = "LIGHTNING_AUTH_FAILURES_PER_MINUTE", default_value_t = Limits::default().auth_failures_per_minute)]
    auth_failures_per_minute: u32,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            max_in_flight: self.max_in_flight,
            header_timeout: std::time::Duration::from_secs(self.header_timeout.max(1)),
            body_timeout: std::time::Duration::from_secs(self.body_timeout.max(1)),
            json_memory_budget: self.json_memory_budget,
            auth_failures_per_minute: self.auth_failures_per_minute,
            ..Limits::default()
        }
    }
}

/// `<n>` seconds, or `<n>` followed by `ms`, `s`, `m`, `h` or `d`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration such as 90s, 30m or 2h (got {s:?})"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(ms)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let api_key = resolve_api_key(args.api_key.as_deref(), &args.store.data_dir)?;
    let store = args.store.open().await?;
    tracing::info!(
        "storing into {} ({:?})",
        args.store.describe(),
        store.backend()
    );
    let limits = args.limits.limits();
    let config = CollectorConfig {
        api_key: ApiKey::new(&api_key),
        body_limit: args.body_limit,
        dashboard_dir: args.dashboard_dir.clone(),
        limits: limits.clone(),
    };
    if args.rollout_guard_interval > 0 {
        tokio::spawn(lightning_collector::rollout_guard::run(
            store.clone(),
            std::time::Duration::from_secs(args.rollout_guard_interval),
            lightning_core::stats::SequentialTest::default(),
        ));
    }
    if args.abandon_after.is_zero() {
        tracing::info!("idle sweep off (--abandon-after 0)");
    } else {
        tokio::spawn(lightning_collector::sweep::run(
            store.clone(),
            args.abandon_after,
        ));
    }
    let dashboard = match &args.dashboard_dir {
        Some(dir) => Dashboard::Dir(dir.clone()),
        None => crate::dashboard::embedded(),
    };
    tracing::info!("dashboard: {dashboard:?}");
    let app = lightning_collector::router_with_dashboard(store, config, &dashboard);
    let listener = listen(&args.host, args.port)
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!("Agent Lightning collector listening on http://{addr}");
    lightning_collector::serve(listener, app, &limits, shutdown_signal()).await?;
    tracing::info!("collector stopped");
    Ok(())
}

/// Pending connections the kernel queues before `accept`. The default of 128 overflows when a
/// burst of agents connects at once, and each connection past it waits a whole SYN retransmit
/// (1 s) before it is even seen; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the first address `host` resolves to, with [`LISTEN_BACKLOG`].
async fn listen(host: &str, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The configured key, else the one kept in the data directory, else a new one written there.
fn resolve_api_key(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(key) = configured {
        anyhow::ensure!(!key.trim().is_empty(), "API_KEY is set but empty");
        return checked_key(key.trim(), "API_KEY (--api-key)");
    }
    let path = data_dir.join("api_key");
    if let Ok(stored) = std::fs::read_to_string(&path) {
        let stored = stored.trim().to_string();
        anyhow::ensure!(
            !stored.is_empty(),
            "{} is empty; delete it to generate a new key",
            path.display()
        );
        lightning_store::private_files::tighten(&path, 0o600);
        tracing::info!("API key: read from {}", path.display());
        return checked_key(&stored, &path.display().to_string());
    }
    lightning_store::private_files::create_dir(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key = format!("lk_{}", random_hex(24));
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    // Printed once, when generated, so the quick start needs no configuration.
    eprintln!(
        "\n  Generated API key (kept in {}):\n\n    {key}\n",
        path.display()
    );
    Ok(key)
}

/// Refuses keys shorter than 16 characters and warns about those shorter than 32.
fn checked_key(key: &str, source: &str) -> anyhow::Result<String> {
    match check_configured_key(key, source) {
        Err(refusal) => anyhow::bail!(refusal),
        Ok(Some(warning)) => tracing::warn!("{warning}"),
        Ok(None) => {}
    }
    Ok(key.to_string())
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{contents}")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        use std::time::Duration;
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn api_key_is_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve_api_key(None, dir.path()).unwrap();
        assert!(first.starts_with("lk_") && first.len() == 51, "{first}");
        assert_eq!(resolve_api_key(None, dir.path()).unwrap(), first);
        assert_eq!(
            resolve_api_key(Some(" given-key-0123456789 "), dir.path()).unwrap(),
            "given-key-0123456789"
        );
        assert!(resolve_api_key(Some(""), dir.path()).is_err());
        let short = resolve_api_key(Some("a"), dir.path()).unwrap_err();
        assert!(short.to_string().contains("shorter than 16"), "{short}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("api_key")), 0o600);
            let fresh = dir.path().join("fresh");
            resolve_api_key(None, &fresh).unwrap();
            assert_eq!(mode(&fresh), 0o700);
        }
    }
}
