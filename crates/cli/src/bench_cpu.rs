//! Where a bench measurement's processor time went, per stored step: the load generator (on
//! threads of its own), the rest of this process (the collector it serves, or the raw ceiling's
//! client) and the PostgreSQL server when it runs on this machine. On 2 shared cores a
//! throughput ratio between two writers is mostly a ratio of these sums, so the bench prints
//! them next to it. Read from Linux's `/proc`; elsewhere the figures are absent.

use std::{fs, sync::OnceLock};

use serde::Serialize;

/// The load generator's thread name (at most 15 bytes: Linux truncates longer names).
const LOAD_THREAD: &str = "bench-load";

/// `/proc` counts CPU time in USER_HZ ticks, which Linux fixes at 100 per second for its
/// userspace interfaces on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// The runtime the load generator's clients run on: threads of their own, so their CPU time
/// can be told apart from the server's, which keeps the process's main runtime.
pub fn load_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(LOAD_THREAD)
            .enable_all()
            .build()
            .expect("the load generator's runtime starts")
    })
}

/// Processor seconds used so far.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// This whole process, threads that have exited included.
    process: f64,
    /// The load generator's threads.
    load: f64,
    /// The `postgres` processes on this machine, their own time and that of the children
    /// they have reaped, when the database is one of them. The difference of two such totals
    /// is exact: a backend that exits in between moves its whole lifetime from its own entry
    /// to its postmaster's reaped children, so what it had used by the first sample cancels;
    /// one that starts in between counts from zero.
    database: Option<f64>,
}

/// Processor time per stored step, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuPerStep {
    /// The load generator (HTTP clients building and sending batches).
    pub load_us: f64,
    /// The rest of this process: the collector server and its store, or the raw client.
    pub server_us: f64,
    /// The PostgreSQL server's processes; `None` for SQLite (in-process: counted in
    /// `server_us`) or a database elsewhere.
    pub database_us: Option<f64>,
}

impl CpuSample {
    /// Now; `None` where `/proc` cannot be read. `database`: count the local `postgres`
    /// processes.
    pub fn now(database: bool) -> Option<Self> {
        let process = read_stat("/proc/self/stat")?.own;
        let load = threads_named(LOAD_THREAD);
        let database = database.then(|| {
            stats_in("/proc", "postgres")
                .map(|s| s.own + s.children)
                .sum()
        });
        Some(Self {
            process,
            load,
            database,
        })
    }

    /// What was used from `self` to `later`, divided over `steps`.
    pub fn per_step(&self, later: &Self, steps: f64) -> CpuPerStep {
        let us = |seconds: f64| (seconds * 1e6 / steps.max(1.0)).max(0.0);
        let load = later.load - self.load;
        CpuPerStep {
            load_us: us(load),
            server_us: us(later.process - self.process - load),
            database_us: self.database.zip(later.database).map(|(a, b)| us(b - a)),
        }
    }
}

/// Whether a PostgreSQL URL points at this machine (loopback or a Unix socket), so its
/// server's processes are ours to count.
pub fn database_is_local(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(url) => matches!(
            url.host_str(),
            None | Some("" | "localhost" | "127.0.0.1" | "[::1]")
        ),
        Err(_) => false,
    }
}

/// One `/proc/.../stat` line: the command name and its CPU seconds (user + system).
#[derive(Debug, PartialEq)]
struct Stat {
    name: String,
    /// Its own.
    own: f64,
    /// Of the children it has waited for.
    children: f64,
}

fn read_stat(path: &str) -> Option<Stat> {
    parse_stat(&fs::read_to_string(path).ok()?)
}

/// The command name sits in parentheses and may itself hold spaces or parentheses, so the
/// fields are counted from the last `)`: state is field 3, utime 14, stime 15, cutime 16 and
/// cstime 17.
fn parse_stat(stat: &str) -> Option<Stat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut ticks = stat
        .get(close + 1..)?
        .split_whitespace()
        .skip(11)
        .map(str::parse::<u64>);
    let mut next = || Some(ticks.next()?.ok()? as f64 / TICKS_PER_SECOND);
    let (utime, stime, cutime, cstime) = (next()?, next()?, next()?, next()?);
    Some(Stat {
        name,
        own: utime + stime,
        children: cutime + cstime,
    })
}

fn threads_named(name: &str) -> f64 {
    stats_in("/proc/self/task", name).map(|s| s.own).sum()
}

/// The entries of `dir` (pids or thread ids) whose command is `name`.
fn stats_in<'a>(dir: &str, name: &'a str) -> impl Iterator<Item = Stat> + 'a {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| read_stat(e.path().join("stat").to_str()?))
        .filter(move |s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A name with a space and a ')' of its own, as a thread may be named.
        let stat = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 56 7 3 20 0 \
                    3 0 100 1000000 200 18446744073709551615";
        let got = parse_stat(stat).expect("parses");
        assert_eq!(got.name, "odd) name");
        assert!((got.own - 12.90).abs() < 1e-9, "{got:?}");
        assert!((got.children - 0.10).abs() < 1e-9, "{got:?}");
        assert_eq!(parse_stat("12 (cut short) S 1"), None);
    }

    #[test]
    fn local_database_urls() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://localhost/test",
            "postgres://[::1]:5432/test",
            "postgres:///test?host=/var/run/postgresql",
        ] {
            assert!(database_is_local(url), "{url}");
        }
        assert!(!database_is_local("postgres://db.internal:5432/test"));
        assert!(!database_is_local("not a url"));
    }

    #[test]
    fn per_step_splits_the_load_generator_from_the_rest() {
        // pid 1 (the postmaster) uses 0.5 s and reaps pid 2, which had used 9 s by the first
        // sample and 10 s in all; pid 3 runs throughout (2.5 s), pid 4 starts in between (1 s).
        // Totals: own times of pids 1-3 plus reaped children, then of pids 1, 3, 4 plus the
        // children, pid 2's 10 s among them.
        let before = CpuSample {
            process: 10.0,
            load: 2.0,
            database: Some(1.0 + 9.0 + 50.0 + 100.0),
        };
        let after = CpuSample {
            process: 13.0,
            load: 2.5,
            database: Some(1.5 + 52.5 + 1.0 + 110.0),
        };
        let cpu = before.per_step(&after, 100_000.0);
        assert!((cpu.load_us - 5.0).abs() < 1e-9);
        assert!((cpu.server_us - 25.0).abs() < 1e-9);
        // 0.5 + 1 (the rest of pid 2) + 2.5 + 1 = 5 s over 100,000 steps.
        assert!((cpu.database_us.unwrap() - 50.0).abs() < 1e-9, "{cpu:?}");
        let none = CpuSample {
            database: None,
            ..before
        };
        assert_eq!(none.per_step(&after, 1.0).database_us, None);
    }

    /// A database backend that exits between two samples is still counted: its time moves to
    /// the parent that reaps it, as a finished child's moves to this test process's.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_time_of_an_exited_child_is_counted_in_its_parent() {
        let before = read_stat("/proc/self/stat").expect("/proc is readable on Linux");
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let after = read_stat("/proc/self/stat").expect("/proc is readable on Linux");
        assert!(
            after.children - before.children >= 0.05,
            "{before:?} -> {after:?}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_and_its_load_threads_are_read_from_proc() {
        let spin = |until: std::time::Instant| {
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            x
        };
        let before = CpuSample::now(false).expect("/proc is readable on Linux");
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        load_runtime()
            .block_on(async move { tokio::spawn(async move { spin(deadline) }).await })
            .expect("the spinning task finishes");
        let after = CpuSample::now(false).expect("/proc is readable on Linux");
        let cpu = before.per_step(&after, 1.0);
        // 300 ms of spinning on a load thread, at 10 ms resolution, on a machine that may
        // be busy (the thread may get less than all of a core).
        assert!(cpu.load_us > 50_000.0, "{cpu:?}");
        assert!(cpu.server_us < cpu.load_us, "{cpu:?}");
    }
}
