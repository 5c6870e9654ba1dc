//! The dashboard compiled into the binary: a copy of `lightning` started from a temporary
//! directory, far from the repository's `dashboard/dist`, serves the UI; `--dashboard-dir`
//! overrides it.
//!
//! What the binary carries is whatever `dashboard/dist` held when it was compiled, so the test
//! compares with that folder: when it has a build, every byte must be served; when it has none,
//! the "not built" page must be. `./scripts/test` builds the dashboard before the binary and sets
//! `LIGHTNING_EXPECT_EMBEDDED_DASHBOARD=1`, which makes a missing build a failure.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_lightning");
const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dashboard/dist");

struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    /// Runs `bin serve` with `cwd` as working directory and `extra` flags.
    fn start(bin: &Path, cwd: &Path, extra: &[&str]) -> Serve {
        let mut cmd = Command::new(bin);
        cmd.current_dir(cwd)
            .args(["serve", "--port", "0", "--api-key", "embedded-test-key"])
            .arg("--data-dir")
            .arg(cwd.join("data"))
            .args(extra);
        for var in [
            "API_KEY",
            "DATABASE_URL",
            "PORT",
            "HOST",
            "LIGHTNING_DATA_DIR",
            "LIGHTNING_DASHBOARD_DIR",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn lightning");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.push_str(&line);
                log.push('\n');
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(Ok(addr.trim().to_string()));
                }
            }
            let _ = tx.send(Err(log));
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(base)) => base,
            Ok(Err(log)) => panic!("collector exited before listening:\n{log}"),
            Err(_) => panic!("collector did not start within 60 s"),
        };
        Serve { child, base }
    }

    /// Status, `Content-Type` and body of `GET path`.
    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let (status, content_type, _, body) = self.get_with_cache(path);
        (status, content_type, body)
    }

    /// Status, `Content-Type`, `Cache-Control` and body of `GET path`.
    fn get_with_cache(&self, path: &str) -> (u16, String, String, Vec<u8>) {
        let response = reqwest::blocking::get(format!("{}{path}", self.base)).expect("request");
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (content_type, cache) = (header("content-type"), header("cache-control"));
        (
            status,
            content_type,
            cache,
            response.bytes().unwrap().to_vec(),
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of the binary in its own temporary directory, which is also the working directory.
fn binary_elsewhere() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("lightning");
    std::fs::copy(BIN, &bin).unwrap();
    (dir, bin)
}

/// The first `/assets/...` file `index.html` references.
fn first_asset(index: &str) -> String {
    let start = index
        .find("/assets/")
        .unwrap_or_else(|| panic!("index.html references no asset:\n{index}"));
    let end = start
        + index[start..]
            .find('"')
            .expect("asset path ends with a quote");
    index[start..end].to_string()
}

#[test]
fn the_binary_serves_its_embedded_dashboard_from_any_directory() {
    let dist = Path::new(DIST);
    let built = dist.join("index.html").is_file();
    if !built && std::env::var_os("LIGHTNING_EXPECT_EMBEDDED_DASHBOARD").is_some() {
        panic!("{DIST} has no build: run `npm --prefix dashboard run build` before cargo");
    }
    let (dir, bin) = binary_elsewhere();
    assert!(!dir.path().join("dashboard").exists());
    let serve = Serve::start(&bin, dir.path(), &[]);

    let (status, content_type, root) = serve.get("/");
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let (_, _, deep) = serve.get("/trajectories/some-id");
    assert_eq!(deep, root, "a client-side route gets the app's index.html");
    let (api_status, _, _) = serve.get("/api/not-a-route");
    assert_eq!(api_status, 401, "/api never falls back to the app");

    if built {
        let index = std::fs::read(dist.join("index.html")).unwrap();
        assert_eq!(root, index, "GET / is the embedded index.html");
        assert_eq!(
            serve.get_with_cache("/").2,
            "no-cache",
            "index.html names the assets"
        );
        let asset = first_asset(&String::from_utf8(index).unwrap());
        let (status, content_type, cache, body) = serve.get_with_cache(&asset);
        assert_eq!(status, 200, "{asset}");
        assert_eq!(cache, "public, max-age=31536000, immutable", "{asset}");
        let (_, _, cache, missing) = serve.get_with_cache("/assets/no-such-file.js");
        assert_eq!(
            missing, root,
            "a missing asset gets the app, as from a directory"
        );
        assert_eq!(cache, "no-cache");
        assert_eq!(
            body,
            std::fs::read(dist.join(&asset[1..])).unwrap(),
            "{asset}"
        );
        let expected = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert_eq!(content_type, expected, "{asset}");
    } else {
        let page = String::from_utf8(root).unwrap();
        assert!(page.contains("has not been built"), "{page}");
    }
}

#[test]
fn dashboard_dir_overrides_the_embedded_build() {
    let (dir, bin) = binary_elsewhere();
    let own = dir.path().join("own-build");
    std::fs::create_dir_all(own.join("assets")).unwrap();
    std::fs::write(own.join("index.html"), "<html>development build</html>").unwrap();
    std::fs::write(own.join("assets/app.js"), "console.log('dev')").unwrap();
    let serve = Serve::start(&bin, dir.path(), &["--dashboard-dir", "own-build"]);
    assert_eq!(serve.get("/").2, b"<html>development build</html>");
    assert_eq!(serve.get("/a/route").2, b"<html>development build</html>");
    assert_eq!(serve.get("/assets/app.js").2, b"console.log('dev')");

    // A directory without a build gets the help page, not the embedded build.
    let serve = Serve::start(&bin, dir.path(), &["--dashboard-dir", "nothing-here"]);
    let page = String::from_utf8(serve.get("/").2).unwrap();
    assert!(page.contains("has not been built"), "{page}");
}
