//! The `lightning serve` binary as a user runs it: flags, generated key, logs, crash safety.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_lightning");

/// A running `lightning serve` whose stderr is collected.
struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").args(["--port", "0"]).args(args);
        for var in [
            "API_KEY",
            "DATABASE_URL",
            "PORT",
            "HOST",
            "LIGHTNING_DATA_DIR",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(envs.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn lightning");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("collector did not start:\n{}", log.lock().unwrap()));
        Serve { child, base, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(method: &str, url: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), url)
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(body);
    }
    let response = req.send().expect("request");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn help_documents_every_setting_and_its_env_var() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for item in [
        "--database-url",
        "DATABASE_URL",
        "--data-dir",
        "LIGHTNING_DATA_DIR",
        "--host",
        "HOST",
        "--port",
        "PORT",
        "--api-key",
        "API_KEY",
        "--body-limit",
        "LIGHTNING_BODY_LIMIT",
        "--dashboard-dir",
        "LIGHTNING_DASHBOARD_DIR",
        "[default: 4000]",
        "[default: 127.0.0.1]",
        "[default: 10485760]",
        "--abandon-after",
        "LIGHTNING_ABANDON_AFTER",
        "[default: 30m]",
        "--write-queue-steps",
        "LIGHTNING_WRITE_QUEUE_STEPS",
    ] {
        assert!(help.contains(item), "serve --help lacks {item}:\n{help}");
    }
    for sub in [vec!["--help"], vec!["bench", "--help"]] {
        let out = Command::new(BIN).args(&sub).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{sub:?}");
    }
}

#[test]
fn generates_a_key_once_logs_requests_and_never_logs_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let serve = Serve::start(&["--data-dir", data], &[]);
    let key = std::fs::read_to_string(dir.path().join("api_key"))
        .unwrap()
        .trim()
        .to_string();
    assert!(key.starts_with("lk_"));
    let (status, body) = call(
        "POST",
        &format!("{}/api/trajectories/start", serve.base),
        &key,
        Some(&json!({"agentId": "a"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = call("GET", &format!("{}/api/agents", serve.base), "wrong", None);
    assert_eq!(status, 401);
    std::thread::sleep(Duration::from_millis(200));
    let first_log = serve.log();
    assert!(
        first_log.contains(&key),
        "a generated key is printed once, on generation"
    );
    assert!(
        first_log.contains("POST /api/trajectories/start - 200 OK ("),
        "{first_log}"
    );
    assert!(
        first_log.contains("GET /api/agents - 401 Unauthorized ("),
        "{first_log}"
    );
    drop(serve);

    // Second start: the same key from the data dir, and it is not printed again.
    let serve = Serve::start(&["--data-dir", data], &[]);
    let (status, _) = call("GET", &format!("{}/api/agents", serve.base), &key, None);
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let log = serve.log();
    assert!(
        !log.contains(&key),
        "the key must not be logged on later starts:\n{log}"
    );
    assert!(log.contains("API key: read from"));
}

#[test]
fn configured_key_and_database_password_never_appear_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    // An unreachable PostgreSQL with a password: start-up fails with a redacted URL.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--db-connect-timeout",
            "1",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .env(
            "DATABASE_URL",
            "postgres://user:hunter2-secret@127.0.0.1:1/db",
        )
        .env("API_KEY", "configured-key-xyz")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("postgres://user:***@127.0.0.1:1/db"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2-secret") && !text.contains("configured-key-xyz"),
        "{text}"
    );

    let serve = Serve::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[("API_KEY", "configured-key-xyz")],
    );
    let (status, _) = call(
        "GET",
        &format!("{}/api/agents", serve.base),
        "configured-key-xyz",
        None,
    );
    assert_eq!(status, 200);
    let (status, body) = call(
        "GET",
        &format!("{}/api/agents", serve.base),
        "configured-key-xyy",
        None,
    );
    assert_eq!((status, body), (401, json!({"error": "Unauthorized"})));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!serve.log().contains("configured-key"), "{}", serve.log());
}

const KILL_KEY: &str = "kill-test-key-0123456789abcdef01";

#[test]
fn a_killed_collector_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["--data-dir", data, "--api-key", KILL_KEY];
    let serve = Serve::start(&args, &[]);
    let (_, body) = call(
        "POST",
        &format!("{}/api/trajectories/start", serve.base),
        KILL_KEY,
        Some(&json!({"agentId": "crash"})),
    );
    let id = body["trajectoryId"].as_str().unwrap().to_string();
    // Writers keep sending while the process is SIGKILLed; every 200 must survive.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let (base, acks) = (serve.base.clone(), acknowledged.clone());
    let id2 = id.clone();
    let writer = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        for n in 0.. {
            if Instant::now() > deadline {
                break;
            }
            let body = json!({"steps": [{"stepNumber": n, "toolName": "Write", "toolOutput": "x".repeat(2000)}]});
            match client
                .post(format!("{base}/api/trajectories/{id2}/steps/batch"))
                .bearer_auth(KILL_KEY)
                .json(&body)
                .send()
            {
                Ok(r) if r.status().is_success() => acks.lock().unwrap().push(n),
                Ok(_) => {}
                Err(_) => break, // the collector is gone
            }
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    let mut serve = serve;
    serve.child.kill().unwrap(); // SIGKILL: no graceful shutdown
    serve.child.wait().unwrap();
    writer.join().unwrap();
    drop(serve);
    let acked = acknowledged.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "the writer got going before the kill ({} acks)",
        acked.len()
    );

    let serve = Serve::start(&args, &[]);
    let (status, t) = call(
        "GET",
        &format!("{}/api/trajectories/{id}?stepsLimit=2000", serve.base),
        KILL_KEY,
        None,
    );
    assert!(
        t["nextStepsAfter"].is_null(),
        "all steps fit one page of 2000"
    );
    assert_eq!(status, 200);
    let stored: Vec<i64> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepNumber"].as_i64().unwrap())
        .collect();
    for n in &acked {
        assert!(
            stored.contains(n),
            "step {n} was acknowledged but lost after SIGKILL"
        );
    }
    assert_eq!(t["stepCount"].as_i64().unwrap() as usize, stored.len());
}

const IDLE_KEY: &str = "idle-sweep-test-key-0123456789";

#[test]
fn idle_trajectories_become_abandoned_and_a_late_step_reopens_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // The env var, as a deployment would set it.
    let serve = Serve::start(
        &["--data-dir", data, "--api-key", IDLE_KEY],
        &[("LIGHTNING_ABANDON_AFTER", "1s")],
    );
    let url = |path: &str| format!("{}{path}", serve.base);
    let (_, started) = call(
        "POST",
        &url("/api/trajectories/start"),
        IDLE_KEY,
        Some(&json!({"agentId": "a"})),
    );
    let id = started["trajectoryId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (_, t) = call(
            "GET",
            &url(&format!("/api/trajectories/{id}")),
            IDLE_KEY,
            None,
        );
        if t["status"] == "abandoned" || Instant::now() > deadline {
            break t["status"].clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, "abandoned", "{}", serve.log());
    assert!(
        serve.log().contains("marked 1 trajectories abandoned"),
        "{}",
        serve.log()
    );
    let batch = json!({"steps": [{"stepNumber": 1, "toolName": "Read"}]});
    let (code, _) = call(
        "POST",
        &url(&format!("/api/trajectories/{id}/steps/batch")),
        IDLE_KEY,
        Some(&batch),
    );
    assert_eq!(code, 200);
    let (_, t) = call(
        "GET",
        &url(&format!("/api/trajectories/{id}")),
        IDLE_KEY,
        None,
    );
    assert_eq!(
        (t["status"].as_str(), t["stepCount"].as_i64()),
        (Some("running"), Some(1))
    );
    let done = json!({"success": false, "status": "interrupted"});
    call(
        "POST",
        &url(&format!("/api/trajectories/{id}/complete")),
        IDLE_KEY,
        Some(&done),
    );
    let (_, t) = call(
        "GET",
        &url(&format!("/api/trajectories/{id}")),
        IDLE_KEY,
        None,
    );
    assert_eq!(t["status"], "interrupted");
}
