//! Missing operations: the subscriber waits for them, alerts while it waits,
//! and skips them only when an operator says so.
//!
//! Every version a publisher takes ends up in a message (its operation, a
//! `noop` when its write failed, or what the publisher's recovery worker
//! publishes after it stopped), so waiting is always safe. A counter stuck
//! for `recovery_timeout` is reported ([`Error::Stalled`]), and again every
//! `recovery_timeout` while it stays stuck. Skipping is left to an operator
//! ([`Promiscuous::skip_missing`], [`Worker::skip_missing`]) who checked that
//! the operations are lost for good: it is reported as [`Error::Recover`].
//!
//! [`Worker::skip_missing`]: super::Worker::skip_missing

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::runtime::{Promiscuous, Runtime};

/// A counter a waiting message needs that has not moved for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The subscriber's counter key (what [`Promiscuous::skip_missing`] takes).
    pub key: String,
    /// The version applied.
    pub applied: u64,
    /// The value a waiting message needs the counter at: skipping to it
    /// lets that message apply.
    pub needed: u64,
    /// How long the counter has been stuck.
    pub waited: Duration,
    /// The endpoint of a waiting message.
    pub endpoint: String,
}

#[derive(Debug, Clone)]
struct Stuck {
    applied: u64,
    needed: u64,
    since: Instant,
    alerted: Option<Instant>,
    endpoint: String,
}

/// Since when each awaited counter has not moved, shared by every message
/// waiting on it: alerts run per missing operation, not per delivery, so
/// messages that step aside and come back do not start over.
#[derive(Debug, Default)]
pub(crate) struct Stalls {
    stuck: Mutex<HashMap<String, Stuck>>,
}

impl Stalls {
    /// Notes that a message of `endpoint` waits for `key` (at `applied`) to
    /// reach `needed`; returns how long the counter has been stuck and
    /// whether to alert now (after `every` of being stuck, then every `every`).
    pub fn waiting(
        &self,
        key: &str,
        applied: u64,
        needed: u64,
        endpoint: &str,
        every: Duration,
    ) -> (Duration, bool) {
        let mut stuck = self.stuck.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = stuck.entry(key.to_owned()).or_insert_with(|| Stuck {
            applied,
            needed,
            since: now,
            alerted: None,
            endpoint: endpoint.to_owned(),
        });
        if entry.applied != applied {
            *entry = Stuck {
                applied,
                needed,
                since: now,
                alerted: None,
                endpoint: endpoint.to_owned(),
            };
        }
        entry.needed = entry.needed.min(needed);
        let waited = now - entry.since;
        let due = match entry.alerted {
            None => waited >= every,
            Some(last) => now - last >= every,
        };
        if due {
            entry.alerted = Some(now);
        }
        (waited, due)
    }

    /// The smallest value a message waiting on `key` needs it at.
    pub fn needed(&self, key: &str) -> Option<u64> {
        let stuck = self.stuck.lock().unwrap_or_else(PoisonError::into_inner);
        stuck.get(key).map(|s| s.needed)
    }

    /// Forgets counters that moved.
    pub fn moved<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut stuck = self.stuck.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            stuck.remove(key);
        }
    }

    /// The counters stuck for at least `at_least`, longest first.
    pub fn list(&self, at_least: Duration) -> Vec<Stall> {
        let stuck = self.stuck.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stalls: Vec<Stall> = stuck
            .iter()
            .map(|(key, s)| Stall {
                key: key.clone(),
                applied: s.applied,
                needed: s.needed,
                waited: s.since.elapsed(),
                endpoint: s.endpoint.clone(),
            })
            .filter(|s| s.waited >= at_least)
            .collect();
        stalls.sort_by(|a, b| b.waited.cmp(&a.waited).then_with(|| a.key.cmp(&b.key)));
        stalls
    }
}

/// Reports that `key` is stuck.
pub(crate) fn alert(
    rt: &Runtime,
    key: &str,
    applied: u64,
    needed: u64,
    waited: Duration,
    endpoint: &str,
) {
    rt.report(&Error::Stalled {
        key: key.to_owned(),
        applied,
        needed,
        waited,
        endpoint: endpoint.to_owned(),
    });
}

/// Raises `key` to `to`, skipping the operations in between; reports it.
/// Returns how many versions were skipped.
pub(crate) async fn skip(rt: &Runtime, key: &str, to: u64, waited: Duration) -> Result<u64> {
    let applied = rt
        .clock
        .read(&[key.to_owned()])
        .await?
        .first()
        .copied()
        .unwrap_or(0);
    if to <= applied {
        return Ok(0);
    }
    rt.clock.advance(&[(key.to_owned(), to)]).await?;
    let endpoint = crate::dependency::endpoint_of_key(key).to_owned();
    crate::metrics::recovery_skipped(&rt.config.app, &endpoint, to - applied);
    rt.report(&Error::Recover {
        key: key.to_owned(),
        applied,
        needed: to,
        waited,
        endpoint,
    });
    Ok(to - applied)
}

impl Promiscuous {
    /// Skips missing operations as an operator: raises the subscriber
    /// counter `key` (as named by [`Error::Stalled`] or
    /// [`Worker::stalls`](super::Worker::stalls)) to `to`, so messages
    /// waiting for versions up to `to` go on. What the skipped operations
    /// carried is lost for this subscriber: run an initial sync of the
    /// endpoint if it mattered. Reported as [`Error::Recover`]. Returns how
    /// many versions were skipped (0 when the counter is already there).
    pub async fn skip_missing(&self, key: &str, to: u64) -> Result<u64> {
        skip(&self.inner, key, to, Duration::ZERO).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_after_the_period_then_every_period() {
        let stalls = Stalls::default();
        let every = Duration::from_millis(30);
        assert!(!stalls.waiting("k", 3, 5, "a/b", every).1);
        std::thread::sleep(every);
        assert!(
            stalls.waiting("k", 3, 5, "a/b", every).1,
            "alert once stuck for the period"
        );
        assert!(
            !stalls.waiting("k", 3, 4, "a/b", every).1,
            "not again at once"
        );
        assert_eq!(stalls.list(Duration::ZERO)[0].needed, 4);
        stalls.moved(["k"]);
        assert!(stalls.list(Duration::ZERO).is_empty());
    }
}
