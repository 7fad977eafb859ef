//! What an operator asks of an app: [`Promiscuous::status`] (the CLI's
//! `status`), read from the broker and the clock, without running a worker.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::dependency::endpoint_of_key;
use crate::error::chain;
use crate::runtime::Promiscuous;
use crate::traits::{Clock, QueueDepth};
use crate::wire::EndpointPattern;
use crate::Mode;

/// Publications older than this, still recorded, are counted as waiting for
/// recovery (a live publisher settles its publication within milliseconds).
const STALE_AFTER: Duration = Duration::from_secs(30);

/// At most this many waiting publications are counted.
const STALE_LIMIT: usize = 10_000;

/// Where an app stands: its broker, its queues, its clock and how far its
/// subscriptions are behind their publishers. Serializes to the JSON that
/// `status --json` prints.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The app.
    pub app: String,
    /// Its generation.
    pub generation: u64,
    /// What [`Promiscuous::healthy`] says.
    pub healthy: bool,
    /// The broker and the app's queues.
    pub broker: BrokerStatus,
    /// The clock.
    pub clock: ClockStatus,
    /// This app's publications recorded more than 30 s ago and not settled:
    /// their publisher stopped and the recovery worker of a running process
    /// of the app will finish them. `None` when the clock could not be asked.
    pub publications_awaiting_recovery: Option<usize>,
    /// Per subscribed endpoint, the publisher's versions against the ones
    /// this app applied.
    pub subscriptions: Vec<SubscriptionStatus>,
}

/// The broker, as [`Status`] reports it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BrokerStatus {
    /// Its name (`amqp`, `in-process`, `null`).
    pub name: &'static str,
    /// Whether it answered.
    pub reachable: bool,
    /// The app's queue.
    pub queue: String,
    /// Its depth, `None` when it does not exist (no worker ever ran) or the
    /// broker keeps no queues.
    pub depth: Option<QueueDepth>,
    /// The dead-letter queue, `<app>.error`.
    pub error_queue: String,
    /// Its depth.
    pub error_depth: Option<QueueDepth>,
    /// Why the broker could not be asked, when it could not.
    pub problem: Option<String>,
}

/// The clock, as [`Status`] reports it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ClockStatus {
    /// Its name (`redis`, `memory`).
    pub name: &'static str,
    /// The identity of its state (see [`Clock::epoch`]).
    pub epoch: u64,
    /// Whether it answered and still holds the state of `epoch`.
    pub reachable: bool,
    /// Why not, when it did not.
    pub problem: Option<String>,
}

/// One subscribed endpoint pattern, as [`Status`] reports it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SubscriptionStatus {
    /// The endpoint pattern (`crowdtap/user`, `crowdtap/*`).
    pub endpoint: String,
    /// Operations the publisher took versions for (the sum of its counters),
    /// when its counters are in this app's clock (apps sharing one Redis).
    pub published: Option<u64>,
    /// Operations this app applied (the sum of its counters for the
    /// publisher's current generation and clock state).
    pub applied: u64,
    /// Operations published and not yet applied, summed per counter; `None`
    /// when the publisher's counters are not known.
    pub behind: Option<u64>,
    /// Why `published` and `behind` are not known, when they are not.
    pub note: Option<String>,
}

impl SubscriptionStatus {
    fn unknown(endpoint: String, applied: u64, note: impl Into<String>) -> Self {
        Self {
            endpoint,
            published: None,
            applied,
            behind: None,
            note: Some(note.into()),
        }
    }
}

impl Promiscuous {
    /// Where this app stands (see [`Status`]); never fails: what could not
    /// be read is reported as such.
    pub async fn status(&self) -> Status {
        let rt = &self.inner;
        let app = rt.config.app.clone();
        let broker = broker_status(self).await;
        let clock = &rt.clock;
        let check = clock.check().await;
        let clock_status = ClockStatus {
            name: clock.name(),
            epoch: clock.epoch(),
            reachable: check.is_ok(),
            problem: check.err().map(|e| chain(&e)),
        };
        let awaiting = if clock_status.reachable {
            clock
                .stale_intents(&app, STALE_AFTER, STALE_LIMIT)
                .await
                .ok()
                .map(|intents| intents.len())
        } else {
            None
        };
        let mut subscriptions = Vec::new();
        if clock_status.reachable {
            for pattern in rt.router.bindings() {
                subscriptions.push(subscription_status(self, &pattern).await);
            }
        }
        Status {
            app,
            generation: rt.config.generation,
            healthy: self.healthy(),
            broker,
            clock: clock_status,
            publications_awaiting_recovery: awaiting,
            subscriptions,
        }
    }
}

async fn broker_status(promiscuous: &Promiscuous) -> BrokerStatus {
    let rt = &promiscuous.inner;
    let queue = rt.config.app.clone();
    let error_queue = format!("{queue}.error");
    let mut problem = None;
    let mut depth_of = |result: Result<Option<QueueDepth>, crate::BackendError>| match result {
        Ok(depth) => depth,
        Err(e) => {
            problem.get_or_insert_with(|| chain(&e));
            None
        }
    };
    let depth = depth_of(rt.broker.queue_depth(&queue).await);
    let error_depth = depth_of(rt.broker.queue_depth(&error_queue).await);
    BrokerStatus {
        name: rt.broker.name(),
        reachable: problem.is_none(),
        queue,
        depth,
        error_queue,
        error_depth,
        problem,
    }
}

/// The versions of `pattern`'s publisher and this app's applied ones, per
/// counter (`crowdtap/user#12`), compared.
async fn subscription_status(
    promiscuous: &Promiscuous,
    pattern: &EndpointPattern,
) -> SubscriptionStatus {
    let rt = &promiscuous.inner;
    let endpoint = pattern.to_string();
    // Causal mode applies the records' counters (`endpoint#bucket`), global
    // mode the endpoint's (`endpoint`); weak and unordered modes keep none
    // that compare with the publisher's.
    let record_counters = match rt.config.mode {
        Mode::Causal => true,
        Mode::Global => false,
        Mode::Weak | Mode::Unordered => {
            return SubscriptionStatus::unknown(
                endpoint,
                0,
                format!(
                    "the {:?} mode keeps no counters to compare with the publisher's",
                    rt.config.mode
                ),
            )
        }
    };
    let Some(publisher) = pattern.app() else {
        return SubscriptionStatus::unknown(
            endpoint,
            0,
            "any publisher app: name it (`from = \"app/model\"`) to see its lag",
        );
    };
    let generation = rt.config.generation;
    let clock = rt.clock.as_ref();
    let published_prefix = format!("p:{generation}:{publisher}/");
    let applied_prefix = format!(
        "s:{}:{publisher}:{generation}:{}:{publisher}/",
        rt.config.app,
        clock.epoch()
    );
    let matches = |counter: &str| {
        counter.contains('#') == record_counters && pattern.matches_str(endpoint_of_key(counter))
    };
    let (published, applied) = match (
        counters(clock, &published_prefix, &matches).await,
        counters(clock, &applied_prefix, &matches).await,
    ) {
        (Ok(published), Ok(applied)) => (published, applied),
        (Err(e), _) | (_, Err(e)) => {
            return SubscriptionStatus::unknown(
                endpoint,
                0,
                format!("the clock's counters could not be read: {}", chain(&e)),
            )
        }
    };
    let applied_total = applied.values().sum();
    if published.is_empty() {
        return SubscriptionStatus::unknown(
            endpoint,
            applied_total,
            format!(
                "no counter of {publisher} in generation {generation} in this clock: it publishes to another Redis, runs another generation, or published nothing yet"
            ),
        );
    }
    let behind = published
        .iter()
        .map(|(counter, &version)| {
            version.saturating_sub(applied.get(counter).copied().unwrap_or(0))
        })
        .sum();
    SubscriptionStatus {
        endpoint,
        published: Some(published.values().sum()),
        applied: applied_total,
        behind: Some(behind),
        note: None,
    }
}

/// The counters under `prefix` that `keep` accepts, by their name after the
/// prefix's namespace (`crowdtap/user#12`).
async fn counters(
    clock: &dyn Clock,
    prefix: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, u64>, crate::BackendError> {
    let namespace = prefix.len() - prefix.rsplit(':').next().map_or(0, str::len);
    let mut found = BTreeMap::new();
    let mut cursor = 0;
    loop {
        let (page, next) = clock.scan(prefix, cursor).await?;
        for (key, value) in page {
            // Weak mode's per-record keys (`endpoint@id`) are not counters.
            if key.contains('@') || !keep(&key[namespace..]) {
                continue;
            }
            found.insert(key[namespace..].to_owned(), value);
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(found)
}
