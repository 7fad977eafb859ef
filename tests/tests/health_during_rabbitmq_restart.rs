//! The health check served next to `/metrics` answers 503 while RabbitMQ is
//! stopped (`rabbitmqctl stop_app`) and 200 once it is back and the broker
//! reconnected. Its own test binary: it disturbs the shared server.
#![cfg(all(feature = "amqp", feature = "redis", feature = "cli"))]

#[path = "common/services.rs"]
mod services;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use promiscuous::cli::MetricsServer;
use promiscuous::core::testkit::unique;
use promiscuous::Promiscuous;

/// The status code of `GET path` on `addr`.
fn status_of(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("the metrics server answers");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Starts RabbitMQ's app again even when the test fails half-way.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_rabbitmq_is_stopped_and_200_once_it_is_back() {
    let app = Promiscuous::configure()
        .app(unique("health"))
        .broker_url(services::amqp_url())
        .redis_url(services::redis_url(&unique("health")))
        .no_subscribers()
        .build()
        .await
        .expect("RabbitMQ and Redis are running");
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), app.clone())
        .await
        .expect("the metrics server starts");
    let addr = server.local_addr();
    let health = move || status_of(addr, "/health");
    assert_eq!(tokio::task::spawn_blocking(health).await.unwrap(), 200);

    let restart = RestartOnDrop;
    services::run("rabbitmqctl", &["stop_app"]);
    let stopped = tokio::task::spawn_blocking(move || {
        services::wait_until("/health answers 503", Duration::from_secs(60), || {
            health() == 503
        })
    });
    stopped.await.expect("/health turned 503");
    let metrics = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        body
    })
    .await
    .unwrap();
    assert!(
        metrics.contains(&format!("promiscuous_healthy{{app=\"{}\"}} 0", app.app())),
        "{metrics}"
    );

    services::run("rabbitmqctl", &["start_app"]);
    std::mem::forget(restart);
    let back = tokio::task::spawn_blocking(move || {
        services::wait_until("/health answers 200", Duration::from_secs(90), || {
            health() == 200
        })
    });
    back.await.expect("/health turned 200 again");
    server.stop();
    app.shutdown().await.expect("shut down");
}
