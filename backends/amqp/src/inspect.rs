//! Inspection helpers: read, replay and purge dead letters (the broker's
//! [`DeadLetterStore`]), count messages, delete a subscription's queues.
//! They open a channel of their own for each call.

use async_trait::async_trait;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::types::ShortString;
use lapin::Channel;
use promiscuous_core::dead_letter::{DeadLetter, DeadLetterStore, Selection};
use promiscuous_core::traits::QueueDepth;
use promiscuous_core::BackendError;

use crate::connection::{bounded, deadline_in, Session, Unavailable};
use crate::error;
use crate::headers::{self, HEADER_ATTEMPT, HEADER_ATTEMPTS, HEADER_ENDPOINT, HEADER_REASON};
use crate::publisher;
use crate::topology;
use crate::AmqpBroker;

/// What [`AmqpBroker::visit_dead_letters`] does with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Leave it parked.
    Keep,
    /// Delete it.
    Remove,
    /// Move it back to its queue.
    Replay,
}

#[async_trait]
impl DeadLetterStore for AmqpBroker {
    async fn list(&self, queue: &str) -> Result<Vec<DeadLetter>, BackendError> {
        self.dead_letters(queue).await
    }

    async fn replay(&self, queue: &str, which: &Selection) -> Result<usize, BackendError> {
        self.visit_dead_letters("replay", queue, chosen(which, Verdict::Replay))
            .await
    }

    async fn purge(&self, queue: &str, which: &Selection) -> Result<usize, BackendError> {
        self.visit_dead_letters("purge", queue, chosen(which, Verdict::Remove))
            .await
    }
}

/// `verdict` for the dead letters `which` selects, [`Verdict::Keep`] for the others.
fn chosen(which: &Selection, verdict: Verdict) -> impl FnMut(&DeadLetter) -> Verdict + '_ {
    move |letter| {
        if which.takes(letter) {
            verdict
        } else {
            Verdict::Keep
        }
    }
}

/// At most this many dead letters are read by one call.
const MAX_DEAD_LETTERS: usize = 100_000;

impl AmqpBroker {
    /// A usable session for a helper, waiting for a reconnection up to the publish timeout.
    async fn helper_session(
        &self,
        operation: &'static str,
        queue: &str,
    ) -> Result<std::sync::Arc<Session>, BackendError> {
        let deadline = deadline_in(self.shared.options.publish_timeout);
        match self.shared.session(Some(deadline)).await {
            Ok(session) => Ok(session),
            Err(Unavailable::Closed) => Err(error::closed(operation, queue)),
            Err(Unavailable::TimedOut) => Err(error::temporary(
                operation,
                queue,
                format!("not connected to RabbitMQ ({})", self.shared.options.url),
            )),
        }
    }

    /// A fresh channel, so a refused call (404) closes nothing else.
    async fn helper_channel(
        &self,
        operation: &'static str,
        queue: &str,
    ) -> Result<Channel, BackendError> {
        let session = self.helper_session(operation, queue).await?;
        session
            .open_channel()
            .await
            .map_err(|e| error::from_lapin(operation, queue, "cannot open a channel", e))
    }

    /// For tests: the messages dead-lettered from `queue` (the contents of
    /// `<queue>.error`), oldest first, left in place.
    ///
    /// Reads them all with `basic_get` and then requeues them. `queue` may be
    /// given with or without the `.error` suffix; a missing error queue reads
    /// as empty.
    pub async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BackendError> {
        self.read_dead_letters(queue, false).await
    }

    /// For tests: like [`dead_letters`](Self::dead_letters), but removes
    /// (acknowledges) the messages it returns.
    pub async fn take_dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>, BackendError> {
        self.read_dead_letters(queue, true).await
    }

    async fn read_dead_letters(
        &self,
        queue: &str,
        remove: bool,
    ) -> Result<Vec<DeadLetter>, BackendError> {
        let verdict = if remove {
            Verdict::Remove
        } else {
            Verdict::Keep
        };
        let mut letters = Vec::new();
        self.visit_dead_letters("dead_letters", queue, |letter| {
            letters.push(letter.clone());
            verdict
        })
        .await?;
        Ok(letters)
    }

    /// Reads every dead letter of `queue` (up to [`MAX_DEAD_LETTERS`]) and
    /// settles each as `decide` says: kept ones go back to the error queue in
    /// their order, removed ones are acknowledged, replayed ones are
    /// published (confirmed) to `queue` itself before being acknowledged.
    /// Returns how many were removed or replayed.
    pub(crate) async fn visit_dead_letters(
        &self,
        operation: &'static str,
        queue: &str,
        mut decide: impl FnMut(&DeadLetter) -> Verdict,
    ) -> Result<usize, BackendError> {
        let base = queue.strip_suffix(".error").unwrap_or(queue);
        let error_queue = topology::error_queue(base);
        let name = topology::short(&error_queue, "queue name")
            .map_err(|m| error::permanent(operation, &error_queue, m))?;
        let target = topology::short(base, "queue name")
            .map_err(|m| error::permanent(operation, base, m))?;
        let channel = self.helper_channel(operation, &error_queue).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match bounded(channel.queue_declare(name.clone(), passive, FieldTable::default())).await {
            Ok(_) => {}
            Err(e) if error::is_not_found(&e) => return Ok(0),
            Err(e) => {
                return Err(error::from_lapin(
                    operation,
                    &error_queue,
                    "cannot look the queue up",
                    e,
                ))
            }
        }
        let settle_failed =
            |e| error::from_lapin(operation, &error_queue, "cannot settle a dead letter", e);
        let mut last_kept = None;
        let mut taken = 0;
        for _ in 0..MAX_DEAD_LETTERS {
            let got = bounded(channel.basic_get(name.clone(), BasicGetOptions { no_ack: false }))
                .await
                .map_err(|e| error::from_lapin(operation, &error_queue, "basic.get failed", e))?;
            let Some(message) = got else {
                break;
            };
            let delivery = message.delivery;
            let tag = delivery.delivery_tag;
            let properties = &delivery.properties;
            let letter = DeadLetter {
                endpoint: headers::text(properties, HEADER_ENDPOINT).unwrap_or_default(),
                reason: headers::text(properties, HEADER_REASON).unwrap_or_default(),
                attempts: headers::count(properties, HEADER_ATTEMPTS)
                    .or_else(|| {
                        headers::count(properties, HEADER_ATTEMPT).map(|a| a.saturating_add(1))
                    })
                    .unwrap_or(0),
                payload: delivery.data,
            };
            match decide(&letter) {
                Verdict::Keep => {
                    last_kept = Some(tag);
                    continue;
                }
                Verdict::Replay => self.replay_one(operation, &target, &letter).await?,
                Verdict::Remove => {}
            }
            bounded(channel.basic_ack(tag, BasicAckOptions { multiple: false }))
                .await
                .map_err(settle_failed)?;
            taken += 1;
        }
        if let Some(tag) = last_kept {
            // Every delivery up to `tag` still unsettled is a kept one.
            let requeue = BasicNackOptions {
                multiple: true,
                requeue: true,
            };
            bounded(channel.basic_nack(tag, requeue))
                .await
                .map_err(settle_failed)?;
        }
        let _ = bounded(channel.close(200, "OK".into())).await;
        Ok(taken)
    }

    /// Publishes a dead letter back to its queue (through the default
    /// exchange, so no other subscriber gets it again), as a new delivery.
    async fn replay_one(
        &self,
        operation: &'static str,
        queue: &ShortString,
        letter: &DeadLetter,
    ) -> Result<(), BackendError> {
        let session = self.helper_session(operation, queue.as_str()).await?;
        let timeout = self.shared.options.publish_timeout;
        publisher::publish_confirmed(
            &session.publisher,
            ShortString::from(""),
            queue.clone(),
            &letter.payload,
            headers::retried(&headers::published(), &letter.endpoint, 0),
            deadline_in(timeout),
        )
        .await
        .map_err(|f| f.into_error(operation, queue.as_str(), "replay to the queue", timeout))
    }

    /// How many messages wait in `queue` and how many consumers it has (a
    /// passive declaration's counts; AMQP does not tell the unacknowledged
    /// ones); `None` for a missing queue.
    pub(crate) async fn declared_depth(
        &self,
        queue: &str,
    ) -> Result<Option<QueueDepth>, BackendError> {
        const OPERATION: &str = "queue_depth";
        let name = topology::short(queue, "queue name")
            .map_err(|m| error::permanent(OPERATION, queue, m))?;
        let channel = self.helper_channel(OPERATION, queue).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let depth = match bounded(channel.queue_declare(name, passive, FieldTable::default())).await
        {
            Ok(declared) => QueueDepth {
                ready: u64::from(declared.message_count()),
                unacked: None,
                consumers: Some(u64::from(declared.consumer_count())),
            },
            Err(e) if error::is_not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(error::from_lapin(
                    OPERATION,
                    queue,
                    "cannot look the queue up",
                    e,
                ))
            }
        };
        let _ = bounded(channel.close(200, "OK".into())).await;
        Ok(Some(depth))
    }

    /// For test cleanup: deletes `queue`, its `<queue>.error` and the retry
    /// queues this broker declared for it, messages included. Missing queues
    /// are skipped. (Retry queues declared by other broker instances delete
    /// themselves 30 s after their last use.)
    pub async fn delete_subscription(&self, queue: &str) -> Result<(), BackendError> {
        let mut names = vec![queue.to_owned(), topology::error_queue(queue)];
        names.extend(
            self.shared
                .take_retry_delays(queue)
                .into_iter()
                .map(|delay| topology::retry_queue(queue, delay)),
        );
        for name in names {
            self.delete_queue(&name).await?;
        }
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BackendError> {
        const OPERATION: &str = "delete_subscription";
        let name = topology::short(queue, "queue name")
            .map_err(|m| error::permanent(OPERATION, queue, m))?;
        let channel = self.helper_channel(OPERATION, queue).await?;
        match bounded(channel.queue_delete(name, QueueDeleteOptions::default())).await {
            Ok(_) => {}
            Err(e) if error::is_not_found(&e) => return Ok(()),
            Err(e) => {
                return Err(error::from_lapin(
                    OPERATION,
                    queue,
                    "cannot delete the queue",
                    e,
                ))
            }
        }
        let _ = bounded(channel.close(200, "OK".into())).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dead_letters_are_the_shared_core_type() {
        let letter = crate::DeadLetter {
            endpoint: "app/user".into(),
            payload: b"{}".to_vec(),
            reason: "malformed".into(),
            attempts: 1,
        };
        let shared: promiscuous_core::dead_letter::DeadLetter = letter.clone();
        assert_eq!(shared, letter);
    }
}
