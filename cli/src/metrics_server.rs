//! `/metrics` (Prometheus text format) and `/health` over HTTP, for a worker
//! or any process of the app.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use promiscuous_core::Promiscuous;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Histogram buckets, in seconds: from 0.5 ms (a local apply) to 5 minutes
/// (a backlog).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// How often histograms are compacted between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// The largest request read; anything longer is answered 400.
const MAX_REQUEST: usize = 8 * 1024;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections answered at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;

/// Why the metrics server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsServerError {
    /// The address could not be bound.
    #[error("cannot serve metrics on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Another `metrics` recorder was installed first.
    #[error("cannot install the Prometheus recorder: {0} (another metrics recorder was installed first; serve its output instead)")]
    Recorder(String),
}

/// An HTTP server answering `GET /metrics` with every metric of the process
/// in Prometheus text format and `GET /health` with 200 while
/// [`Promiscuous::healthy`] holds, else 503. Stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Installs the Prometheus recorder (once per process) and serves it on
    /// `addr` (port 0 picks a free port: see [`local_addr`](Self::local_addr)).
    pub async fn start(
        addr: SocketAddr,
        promiscuous: Promiscuous,
    ) -> Result<Self, MetricsServerError> {
        let handle = recorder()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsServerError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MetricsServerError::Bind { addr, source })?;
        let task = tokio::spawn(serve(listener, handle, promiscuous));
        tracing::info!(addr = %local, "serving /metrics and /health");
        Ok(Self { addr: local, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub fn stop(self) {}
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The process's Prometheus recorder, installed on first use.
fn recorder() -> Result<PrometheusHandle, MetricsServerError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| MetricsServerError::Recorder(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| MetricsServerError::Recorder(e.to_string()))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(HANDLE.get_or_init(|| handle).clone())
}

async fn serve(listener: TcpListener, handle: PrometheusHandle, promiscuous: Promiscuous) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (handle, promiscuous) = (handle.clone(), promiscuous.clone());
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &handle, &promiscuous).await {
                tracing::debug!(%error, "metrics request failed");
            }
            drop(slot);
        });
    }
}

/// Reads the request head, up to [`MAX_REQUEST`] bytes and [`READ_TIMEOUT`];
/// `None` when it is too long.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        if request.len() >= MAX_REQUEST {
            return Ok(None);
        }
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buffer))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"))??;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    Ok(Some(request))
}

async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    promiscuous: &Promiscuous,
) -> std::io::Result<()> {
    let Some(request) = read_head(&mut stream).await? else {
        let response = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        stream.write_all(response.as_bytes()).await?;
        return stream.shutdown().await;
    };
    let line = String::from_utf8_lossy(&request);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or(path);
    let healthy = promiscuous.healthy();
    promiscuous_core::metrics::set_healthy(promiscuous.app(), healthy);
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", handle.render()),
        ("GET", "/health") if healthy => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET", "/health") => (
            "503 Service Unavailable",
            "text/plain",
            "unhealthy: see the logs (broker or clock unreachable, or the clock lost its state)\n"
                .to_owned(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /health\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
