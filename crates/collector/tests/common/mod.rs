//! A real collector on a random port, over a real store, for HTTP-level tests.
#![allow(
    dead_code,
    reason = "each test binary includes this module and uses a different part of it"
)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use lightning_collector::{ApiKey, CollectorConfig, Limits, DEFAULT_BODY_LIMIT};
use lightning_store::Store;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::{net::TcpListener, sync::watch};

pub const KEY: &str = "test-key-0123456789";

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    _shutdown: watch::Sender<()>,
}

pub struct Options {
    pub body_limit: usize,
    pub dashboard_dir: Option<PathBuf>,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            dashboard_dir: None,
            // Route walks send hundreds of keyless requests from one address.
            limits: Limits {
                auth_failures_per_minute: u32::MAX,
                ..Limits::default()
            },
        }
    }
}

impl Server {
    pub async fn start(store: Arc<dyn Store>) -> Self {
        Self::start_with(store, Options::default()).await
    }

    pub async fn start_with(store: Arc<dyn Store>, options: Options) -> Self {
        let config = CollectorConfig {
            api_key: ApiKey::new(KEY),
            body_limit: options.body_limit,
            dashboard_dir: options.dashboard_dir,
            limits: options.limits.clone(),
        };
        let app = lightning_collector::router(store, config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = watch::channel(());
        // The server loop `lightning serve` runs, with its limits.
        tokio::spawn(async move {
            lightning_collector::serve(listener, app, &options.limits, async move {
                let _ = rx.changed().await;
            })
            .await
            .unwrap();
        });
        Server {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.request(Method::GET, path)).await
    }

    /// `GET path` answered as NDJSON (the export): one parsed value per line.
    pub async fn ndjson(&self, path: &str) -> Vec<Value> {
        let text = self
            .request(Method::GET, path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub async fn start_trajectory(&self, body: &Value) -> String {
        let (status, json) = self.post("/api/trajectories/start", body).await;
        assert_eq!(status, 200, "{json}");
        json["trajectoryId"].as_str().unwrap().to_string()
    }
}

pub async fn send(req: RequestBuilder) -> (u16, Value) {
    let response: Response = req.send().await.expect("request failed");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

/// A TCP proxy in front of PostgreSQL that a test can cut (dropping every connection and
/// refusing new ones) and restore, to simulate the database going away.
pub struct CuttableProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl CuttableProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (cut2, gen2) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let mut killed = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            generation,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
