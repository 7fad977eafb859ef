//! Throughput of replication compared with the raw broker, in one run.
//!
//! ```sh
//! cargo bench -p promiscuous-benches --bench throughput                               # in-process broker, memory clock
//! cargo bench -p promiscuous-benches --bench throughput -- --real   # RabbitMQ and Redis
//! ```
//!
//! It prints messages per second for the raw broker (publish with confirm,
//! consume, ack) and for promiscuous end to end (lock, clock, write, publish,
//! order, apply, ack), their ratio, and the peak memory of the process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use promiscuous::core::testkit::unique;
use promiscuous::core::traits::Subscription;
use promiscuous::core::wire::EndpointPattern;
use promiscuous::memory::MemoryStorage;
use promiscuous::{Broker, Promiscuous, Publish, Subscribe};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(about = "Replication throughput as a ratio to the raw broker")]
struct Args {
    /// Messages per measurement.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Concurrent publisher tasks.
    #[arg(long, default_value_t = 4)]
    publishers: u64,
    /// Distinct records the writes spread over.
    #[arg(long, default_value_t = 1_000)]
    records: u64,
    /// Use RabbitMQ and Redis (PROMISCUOUS_AMQP_URL, PROMISCUOUS_REDIS_URL or the local servers).
    #[arg(long)]
    real: bool,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The published record.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
pub struct BenchRecord {
    /// Primary key.
    pub id: u64,
    /// Changes at every write.
    #[publish]
    pub value: u64,
}

/// The subscriber's copy.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(as = "BenchRecord")]
pub struct BenchCopy {
    /// The publisher's id.
    pub id: u64,
    /// The replicated value.
    #[subscribe]
    pub value: u64,
}

fn urls(real: bool) -> (String, String) {
    if real {
        let amqp = std::env::var("PROMISCUOUS_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let redis = std::env::var("PROMISCUOUS_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        (amqp, format!("{redis}?prefix={}:", unique("bench")))
    } else {
        let name = unique("bench");
        (format!("memory://{name}"), format!("memory://{name}"))
    }
}

/// Peak resident memory of the process, in MiB (Linux), if known.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn raw_broker(broker: Arc<dyn Broker>, args: &Args) -> f64 {
    let queue = unique("bench-raw");
    let app = unique("rawpub");
    let subscription = Subscription {
        queue: queue.clone(),
        bindings: vec![EndpointPattern::parse(&format!("{app}/*")).expect("valid pattern")],
        prefetch: 1000,
    };
    let mut consumer = broker.subscribe(&subscription).await.expect("subscribe");
    let payload = vec![b'x'; 200];
    let started = Instant::now();
    let per_task = args.messages / args.publishers;
    let publishers: Vec<_> = (0..args.publishers)
        .map(|_| {
            let (broker, payload, endpoint) =
                (broker.clone(), payload.clone(), format!("{app}/record"));
            tokio::spawn(async move {
                for _ in 0..per_task {
                    broker.publish(&endpoint, &payload).await.expect("publish");
                }
            })
        })
        .collect();
    let total = per_task * args.publishers;
    let acks = Arc::new(AtomicU64::new(0));
    let mut settling = Vec::new();
    for _ in 0..total {
        let delivery = consumer
            .next()
            .await
            .expect("consumer open")
            .expect("delivery");
        let acks = acks.clone();
        settling.push(tokio::spawn(async move {
            delivery.ack().await.expect("ack");
            acks.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for task in publishers.into_iter().chain(settling) {
        task.await.expect("task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn replication(args: &Args) -> f64 {
    let (broker, clock) = urls(args.real);
    let build = |app: String, subscribe: bool| {
        let (broker, clock) = (broker.clone(), clock.clone());
        async move {
            let builder = Promiscuous::configure()
                .app(app)
                .broker_url(broker)
                .redis_url(clock)
                .storage(Arc::new(MemoryStorage::new()))
                .runners(16);
            let builder = if subscribe {
                builder.subscriber::<BenchCopy>()
            } else {
                builder.no_subscribers()
            };
            builder.build().await.expect("backends reachable")
        }
    };
    let subscriber = build(unique("bench-sub"), true).await;
    let publisher = build(unique("bench-pub"), false).await;
    let mut worker = subscriber.subscribe().await.expect("worker");
    for id in 0..args.records {
        publisher
            .create(&BenchRecord { id, value: 0 })
            .await
            .expect("create");
    }
    while worker.stats().applied < args.records {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let per_task = args.messages / args.publishers;
    let tasks: Vec<_> = (0..args.publishers)
        .map(|task| {
            let publisher = publisher.clone();
            let records = args.records;
            tokio::spawn(async move {
                for i in 0..per_task {
                    let id = (i * args_stride(task) + task) % records;
                    publisher
                        .update(&BenchRecord { id, value: i })
                        .await
                        .expect("update");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher task");
    }
    let target = args.records + per_task * args.publishers;
    while worker.stats().applied < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = (per_task * args.publishers) as f64 / started.elapsed().as_secs_f64();
    worker.shutdown().await;
    rate
}

/// Spreads each task's writes over the records.
fn args_stride(task: u64) -> u64 {
    7 + 2 * task
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (broker_url, _) = urls(args.real);
    let broker = Promiscuous::configure()
        .app("bench-raw")
        .broker_url(broker_url)
        .redis_url(format!("memory://{}", unique("bench")))
        .no_subscribers()
        .build()
        .await
        .expect("broker reachable")
        .broker()
        .clone();
    println!(
        "backends: {}",
        if args.real {
            "RabbitMQ + Redis"
        } else {
            "in-process broker + memory clock"
        }
    );
    let raw = raw_broker(broker, &args).await;
    println!("raw broker:   {raw:>10.0} messages/s (publish with confirm, consume, ack)");
    let replicated = replication(&args).await;
    println!("promiscuous:  {replicated:>10.0} operations/s (lock, clock, write, publish, order, apply, ack)");
    println!("ratio:        {:>10.2} of the raw broker", replicated / raw);
    if let Some(peak) = peak_mib() {
        println!("peak memory:  {peak:>10.1} MiB");
    }
}
