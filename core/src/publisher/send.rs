//! Publishing a message to its endpoints, and the names a publisher gives
//! its locks and counters.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::runtime::Runtime;
use crate::wire::Message;

impl Runtime {
    /// A lock owner tag unique to one publication of this process: the
    /// publication's id.
    pub(crate) fn next_owner(&self) -> String {
        let sequence = self
            .lock_sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{sequence}", self.owner)
    }

    /// The clock key of a publisher counter.
    pub(crate) fn clock_key(&self, counter: &str) -> String {
        format!("p:{}:{counter}", self.config.generation)
    }

    /// Publishes to every endpoint, retrying temporary failures for up to
    /// `lock_ttl` (the locks are kept alive meanwhile).
    pub(crate) async fn send(&self, endpoints: &[String], message: &Message) -> Result<()> {
        let payload = message.encode();
        let deadline = Instant::now() + self.config.lock_ttl;
        for endpoint in endpoints {
            let mut pauses =
                crate::backoff::exponential(Duration::from_millis(100), Duration::from_secs(2));
            loop {
                let started = Instant::now();
                match self.broker.publish(endpoint, &payload).await {
                    Ok(()) => {
                        crate::metrics::confirm(&self.config.app, started.elapsed());
                        break;
                    }
                    Err(e) if e.is_temporary() => {
                        let pause = pauses.next().unwrap_or(Duration::from_secs(2));
                        if Instant::now() + pause >= deadline {
                            return Err(e.into());
                        }
                        tracing::warn!(endpoint = %endpoint, error = %crate::error::chain(&e), "publish failed, retrying");
                        tokio::time::sleep(pause).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Every way of publishing comes here (a write, the relay, recovery,
        // a sync): each operation is counted once its message is confirmed.
        for op in &message.operations {
            if matches!(
                op.operation,
                crate::wire::OperationKind::Noop | crate::wire::OperationKind::Baseline
            ) {
                continue;
            }
            if let Some(model) = op.types.first() {
                crate::metrics::published(&self.config.app, &op.endpoint, model);
            }
        }
        Ok(())
    }
}
