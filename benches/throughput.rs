//! Throughput and latency of replication compared with the raw broker, in one run.
//!
//! ```sh
//! cargo bench -p promiscuous-benches --bench throughput                               # in-process broker, memory clock
//! cargo bench -p promiscuous-benches --bench throughput -- --real   # RabbitMQ and Redis
//! cargo bench -p promiscuous-benches --bench throughput -- --real --sweep
//! bash benches/callgrind.sh                                                          # instructions per operation
//! ```
//!
//! It prints, each measured in the same run: the broker's own limit (with
//! `--real`, lapin publishing persistent messages with confirms pipelined,
//! one consumer acking every 100), the project's `Broker` (publish with
//! confirm, consume, ack), promiscuous publishing alone (the subscriber's
//! queue filling), its subscriber alone (draining that queue), end to end
//! (lock, clock, write, publish, order, apply, ack) and its ratio to the
//! raw broker, the latency from the publish call to the apply at half the
//! end-to-end rate, and the peak memory of the process; then one JSON line
//! with the same figures, for tracking.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use promiscuous::core::testkit::unique;
use promiscuous::core::traits::Subscription;
use promiscuous::core::wire::EndpointPattern;
use promiscuous::memory::MemoryStorage;
use promiscuous::{BoxError, Broker, Callbacks, Context, Promiscuous, Publish, Subscribe, Worker};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug, Clone)]
#[command(about = "Replication throughput and latency as a ratio to the raw broker")]
struct Args {
    /// Operations per measurement.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Concurrent publisher tasks.
    #[arg(long, default_value_t = 4)]
    publishers: u64,
    /// The subscriber's runners (operations applied in parallel).
    #[arg(long, default_value_t = 16)]
    runners: usize,
    /// Distinct records the writes spread over.
    #[arg(long, default_value_t = 1_000)]
    records: u64,
    /// Use RabbitMQ and Redis (PROMISCUOUS_AMQP_URL, PROMISCUOUS_REDIS_URL or the local servers).
    #[arg(long)]
    real: bool,
    /// End to end only, for publishers 1, 16, 64, 256 and runners 1, 8, 32.
    #[arg(long)]
    sweep: bool,
    /// End to end only, once (what `callgrind.sh` counts).
    #[arg(long)]
    end_to_end_only: bool,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The published record; `sent` is when it was published, in microseconds
/// since the run started.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
pub struct BenchRecord {
    /// Primary key.
    pub id: u64,
    /// Changes at every write.
    #[publish]
    pub value: u64,
    /// When the write was published (µs since the start of the run).
    #[publish]
    pub sent: u64,
}

/// The subscriber's copy; its callback measures the latency.
#[derive(Debug, Serialize, Deserialize, Subscribe)]
#[subscribe(as = "BenchRecord", callbacks)]
pub struct BenchCopy {
    /// The publisher's id.
    pub id: u64,
    /// The replicated value.
    #[subscribe]
    pub value: u64,
    /// When it was published.
    #[subscribe]
    pub sent: u64,
}

/// When the run started: `sent` counts from here.
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros_since_start() -> u64 {
    start().elapsed().as_micros() as u64
}

/// Whether applies record their latency now (only in the paced phase).
static MEASURING: AtomicBool = AtomicBool::new(false);

/// Latencies recorded, in microseconds.
fn latencies() -> &'static Mutex<Vec<u64>> {
    static LATENCIES: OnceLock<Mutex<Vec<u64>>> = OnceLock::new();
    LATENCIES.get_or_init(|| Mutex::new(Vec::new()))
}

#[promiscuous::async_trait]
impl Callbacks for BenchCopy {
    async fn after_update(&self, _ctx: &Context) -> Result<(), BoxError> {
        if MEASURING.load(Ordering::Relaxed) {
            let latency = micros_since_start().saturating_sub(self.sent);
            latencies()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(latency);
        }
        Ok(())
    }
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

/// Redis's own counters (`INFO stats` and `INFO commandstats`): commands
/// processed (the scripts' own calls included), bytes in and out, and
/// script calls (`EVALSHA`, `EVAL`). The server is shared: run nothing else
/// against it meanwhile.
fn redis_counters() -> Option<[u64; 4]> {
    let output = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "info", "all"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .parse()
                .ok()
        })
    };
    // `cmdstat_evalsha:calls=12,usec=…`
    let calls = |command: &str| -> u64 {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(&format!("cmdstat_{command}:calls="))?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    Some([
        field("total_commands_processed")?,
        field("total_net_input_bytes")?,
        field("total_net_output_bytes")?,
        calls("evalsha") + calls("eval"),
    ])
}

/// The broker's own limit: lapin publishing persistent 200-byte messages to
/// one queue with confirms pipelined (up to 1,000 in flight), one consumer
/// (prefetch 1,000) acking every 100 with `multiple`.
async fn raw_lapin(url: &str, messages: u64) -> f64 {
    use futures::stream::FuturesUnordered;
    use futures::StreamExt;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::{FieldTable, ShortString};
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("RabbitMQ reachable");
    let publisher = connection.create_channel().await.expect("channel");
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let queue = ShortString::from(unique("bench-lapin"));
    publisher
        .queue_declare(
            queue.clone(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    let consuming = connection.create_channel().await.expect("channel");
    consuming
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consuming
        .basic_consume(
            queue.clone(),
            ShortString::from(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let started = Instant::now();
    let drained = tokio::spawn(async move {
        let mut received = 0u64;
        while received < messages {
            let delivery = consumer.next().await.expect("open").expect("delivery");
            received += 1;
            if received.is_multiple_of(100) || received == messages {
                delivery
                    .acker
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .expect("ack");
            }
        }
    });
    let payload = vec![b'x'; 200];
    let mut in_flight: FuturesUnordered<lapin::PublisherConfirm> = FuturesUnordered::new();
    for _ in 0..messages {
        if in_flight.len() >= 1000 {
            in_flight
                .next()
                .await
                .expect("a confirm")
                .expect("confirmed");
        }
        let confirm = publisher
            .basic_publish(
                ShortString::from(""),
                queue.clone(),
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        in_flight.push(confirm);
    }
    while let Some(confirm) = in_flight.next().await {
        confirm.expect("confirmed");
    }
    drained.await.expect("consumer");
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let _ = publisher
        .queue_delete(queue, QueueDeleteOptions::default())
        .await;
    let _ = connection.close(200, "OK".into()).await;
    rate
}

/// The project's broker: `Broker::publish` with its confirm from concurrent
/// tasks, consume, ack.
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

/// A publisher app and a subscriber app on the same backends, the records
/// created and replicated.
struct Pair {
    publisher: Promiscuous,
    subscriber: Promiscuous,
}

impl Pair {
    async fn new(args: &Args) -> Self {
        let (broker, clock) = urls(args.real);
        let build = |app: String, subscribe: bool| {
            let (broker, clock) = (broker.clone(), clock.clone());
            let runners = args.runners;
            async move {
                let builder = Promiscuous::configure()
                    .app(app)
                    .broker_url(broker)
                    .redis_url(clock)
                    .storage(Arc::new(MemoryStorage::new()))
                    .runners(runners);
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
                .create(&BenchRecord {
                    id,
                    value: 0,
                    sent: 0,
                })
                .await
                .expect("create");
        }
        wait_applied(&worker, args.records).await;
        worker.shutdown().await;
        Self {
            publisher,
            subscriber,
        }
    }

    /// Publishes `per_task` updates from each of `tasks` tasks, each at
    /// most one every `interval` when given; returns when all are confirmed.
    async fn publish(&self, args: &Args, per_task: u64, interval: Option<Duration>) {
        let tasks: Vec<_> = (0..args.publishers)
            .map(|task| {
                let publisher = self.publisher.clone();
                let records = args.records;
                tokio::spawn(async move {
                    let began = tokio::time::Instant::now();
                    for i in 0..per_task {
                        if let Some(interval) = interval {
                            tokio::time::sleep_until(began + interval * i as u32).await;
                        }
                        let id = (i * stride(task) + task) % records;
                        let record = BenchRecord {
                            id,
                            value: i,
                            sent: micros_since_start(),
                        };
                        publisher.update(&record).await.expect("update");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("publisher task");
        }
    }
}

async fn wait_applied(worker: &Worker, target: u64) {
    while worker.stats().applied < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Spreads each task's writes over the records.
fn stride(task: u64) -> u64 {
    7 + 2 * task
}

/// What one run measured.
#[derive(Debug, Default, Serialize)]
struct Figures {
    backends: &'static str,
    publishers: u64,
    runners: usize,
    records: u64,
    operations: u64,
    raw_lapin: Option<f64>,
    raw_broker: Option<f64>,
    publisher_only: Option<f64>,
    subscriber_only: Option<f64>,
    end_to_end: f64,
    ratio: Option<f64>,
    latency_rate: Option<f64>,
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    latency_max_ms: Option<f64>,
    redis_commands_per_op: Option<f64>,
    redis_scripts_per_op: Option<f64>,
    redis_bytes_per_op: Option<f64>,
    peak_mib: Option<f64>,
}

async fn run(args: &Args, full: bool) -> Figures {
    let mut figures = Figures {
        backends: if args.real {
            "RabbitMQ + Redis"
        } else {
            "in-process broker + memory clock"
        },
        publishers: args.publishers,
        runners: args.runners,
        records: args.records,
        operations: args.messages / args.publishers * args.publishers,
        ..Figures::default()
    };
    let (broker_url, _) = urls(args.real);
    if full {
        if args.real {
            figures.raw_lapin = Some(raw_lapin(&broker_url, args.messages).await);
        }
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
        figures.raw_broker = Some(raw_broker(broker, args).await);
    }
    let per_task = args.messages / args.publishers;
    let operations = per_task * args.publishers;
    let pair = Pair::new(args).await;

    if full {
        // Publishing alone: the subscriber's queue fills.
        let started = Instant::now();
        pair.publish(args, per_task, None).await;
        figures.publisher_only = Some(operations as f64 / started.elapsed().as_secs_f64());
        // The subscriber alone, draining it.
        let mut worker = pair.subscriber.subscribe().await.expect("worker");
        let started = Instant::now();
        wait_applied(&worker, operations).await;
        figures.subscriber_only = Some(operations as f64 / started.elapsed().as_secs_f64());
        worker.shutdown().await;
    }

    // End to end: publishers and the worker at once.
    let mut worker = pair.subscriber.subscribe().await.expect("worker");
    let redis_before = args.real.then(redis_counters).flatten();
    let started = Instant::now();
    pair.publish(args, per_task, None).await;
    wait_applied(&worker, operations).await;
    figures.end_to_end = operations as f64 / started.elapsed().as_secs_f64();
    if let (Some(before), Some(after)) = (redis_before, args.real.then(redis_counters).flatten()) {
        let per_op = |delta: u64| delta as f64 / operations as f64;
        figures.redis_commands_per_op = Some(per_op(after[0] - before[0]));
        figures.redis_scripts_per_op = Some(per_op(after[3] - before[3]));
        figures.redis_bytes_per_op = Some(per_op(after[1] - before[1] + after[2] - before[2]));
    }
    figures.ratio = figures
        .raw_lapin
        .or(figures.raw_broker)
        .map(|raw| figures.end_to_end / raw);

    if full {
        // Latency at half the end-to-end rate, paced.
        let rate = figures.end_to_end / 2.0;
        let interval = Duration::from_secs_f64(args.publishers as f64 / rate);
        let paced = (per_task / 4).max(1);
        let before = worker.stats().applied;
        latencies()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        MEASURING.store(true, Ordering::Relaxed);
        pair.publish(args, paced, Some(interval)).await;
        wait_applied(&worker, before + paced * args.publishers).await;
        MEASURING.store(false, Ordering::Relaxed);
        let mut measured =
            std::mem::take(&mut *latencies().lock().unwrap_or_else(PoisonError::into_inner));
        measured.sort_unstable();
        let at = |q: f64| {
            measured
                .get(((measured.len() as f64 - 1.0) * q).round() as usize)
                .map(|&micros| micros as f64 / 1000.0)
        };
        figures.latency_rate = Some(rate);
        figures.latency_p50_ms = at(0.50);
        figures.latency_p99_ms = at(0.99);
        figures.latency_max_ms = at(1.0);
    }
    worker.shutdown().await;
    figures.peak_mib = peak_mib();
    figures
}

fn show(figures: &Figures) {
    let rate = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:>10.0}"));
    println!(
        "backends: {}, {} publishers, {} runners, {} records, {} operations",
        figures.backends, figures.publishers, figures.runners, figures.records, figures.operations
    );
    if figures.raw_lapin.is_some() {
        println!(
            "raw lapin:        {} messages/s (confirms pipelined, 1,000 in flight; acks every 100)",
            rate(figures.raw_lapin)
        );
    }
    if figures.raw_broker.is_some() {
        println!(
            "raw Broker:       {} messages/s (Broker::publish with its confirm, consume, ack)",
            rate(figures.raw_broker)
        );
        println!(
            "publisher alone:  {} operations/s (lock, clock, write, publish; the queue fills)",
            rate(figures.publisher_only)
        );
        println!(
            "subscriber alone: {} operations/s (draining that queue: order, apply, ack)",
            rate(figures.subscriber_only)
        );
    }
    println!(
        "end to end:       {} operations/s",
        rate(Some(figures.end_to_end))
    );
    if let Some(ratio) = figures.ratio {
        println!("ratio:            {ratio:>10.2} of the raw broker");
    }
    if let (Some(p50), Some(p99), Some(max), Some(at)) = (
        figures.latency_p50_ms,
        figures.latency_p99_ms,
        figures.latency_max_ms,
        figures.latency_rate,
    ) {
        println!(
            "latency at {at:.0} ops/s: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms (publish call to apply)"
        );
    }
    if let (Some(commands), Some(scripts), Some(bytes)) = (
        figures.redis_commands_per_op,
        figures.redis_scripts_per_op,
        figures.redis_bytes_per_op,
    ) {
        println!(
            "Redis per operation: {scripts:.1} script calls, {commands:.1} commands in all, {bytes:.0} bytes in and out (end to end)"
        );
    }
    if let Some(peak) = figures.peak_mib {
        println!("peak memory:      {peak:>10.1} MiB");
    }
    println!(
        "{}",
        serde_json::to_string(figures).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    start();
    if args.sweep {
        for publishers in [1, 16, 64, 256] {
            for runners in [1, 8, 32] {
                let args = Args {
                    publishers,
                    runners,
                    ..args.clone()
                };
                show(&run(&args, false).await);
            }
        }
    } else {
        show(&run(&args, !args.end_to_end_only).await);
    }
}
