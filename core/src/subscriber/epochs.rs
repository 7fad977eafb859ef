//! The clock epochs of each publisher, as a subscriber has seen them.
//!
//! A publisher's clock that lost its state (Redis restarted empty) starts a
//! new epoch, and its versions start again from 1. Counters are kept per
//! epoch, so the new versions never meet the old ones. Messages of the old
//! epoch still queued after the first message of the new one cannot be
//! ordered against it (the operations they wait for may be gone with the
//! state, and a record may already hold a newer state): they are
//! dead-lettered, loudly, and an initial sync brings the subscriber in line.
//!
//! It also keeps the first era (generation and epoch) the subscriber ever
//! received of each publisher: a sync's baseline only concerns a subscriber
//! whose queue was created during the baseline's era (see `baseline`).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::wire::Message;

/// Whose counters a message's versions belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Era {
    /// The publishing app.
    pub app: String,
    /// Its generation.
    pub generation: u64,
    /// Its clock's epoch (0: an old publisher that does not say).
    pub epoch: u64,
}

impl Era {
    /// The era of `message`.
    pub fn of(message: &Message) -> Self {
        Self {
            app: message.app.clone(),
            generation: message.generation,
            epoch: message.epoch,
        }
    }

    /// The prefix of this era's counters for subscriber app `subscriber`.
    pub fn namespace(&self, subscriber: &str) -> String {
        match self.epoch {
            0 => format!("s:{subscriber}:{}:{}", self.app, self.generation),
            epoch => format!("s:{subscriber}:{}:{}:{epoch}", self.app, self.generation),
        }
    }

    /// The subscriber's clock key holding the latest epoch it saw of this app
    /// and generation (no counter key ends so: theirs end with an endpoint).
    fn latest_key(&self, subscriber: &str) -> String {
        format!("s:{subscriber}:{}:{}:epoch", self.app, self.generation)
    }

    /// The error dead-lettering a message of this era once `latest` replaced it.
    pub fn superseded(&self, latest: u64) -> Error {
        Error::SupersededEpoch {
            app: self.app.clone(),
            generation: self.generation,
            epoch: self.epoch,
            latest,
        }
    }
}

/// The latest epoch seen per publisher app and generation, kept in memory
/// and in the subscriber's clock (so a restarted worker knows it too).
#[derive(Debug, Default)]
pub(crate) struct Epochs {
    latest: Mutex<HashMap<(String, u64), u64>>,
    /// Per publisher app, the first era (generation, epoch) this subscriber
    /// ever received from it: its queue holds everything since.
    first: Mutex<HashMap<String, (u64, u64)>>,
    /// The changes reported (app, generation, later epoch): once each.
    reported: Mutex<HashSet<(String, u64, u64)>>,
    /// Woken when a later epoch is seen, so waiting messages of the old one
    /// are dead-lettered at once instead of at their next alert.
    pub changed: Notify,
}

impl Epochs {
    /// The later epoch that replaced `era`'s, if one did.
    pub fn superseding(&self, era: &Era) -> Option<u64> {
        if era.epoch == 0 {
            return None;
        }
        let latest = self
            .lock()
            .get(&(era.app.clone(), era.generation))
            .copied()?;
        (latest > era.epoch).then_some(latest)
    }

    /// Whether `era` is the first era this subscriber received of its
    /// publisher (recorded, once, by [`observe`](Self::observe)): its queue
    /// was created during it, so what came before the queue belongs to it.
    pub fn is_first_era(&self, era: &Era) -> bool {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&era.app)
            == Some(&(era.generation, era.epoch))
    }

    /// Records, the first time this process sees `era`'s publisher, the
    /// first era this subscriber ever received of it (kept in its clock).
    async fn record_first(&self, rt: &Runtime, era: &Era) -> Result<()> {
        let known = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&era.app);
        if known {
            return Ok(());
        }
        let keys = [
            format!("s:{}:{}:first-generation", rt.config.app, era.app),
            format!("s:{}:{}:first-epoch", rt.config.app, era.app),
        ];
        rt.clock
            .seed(&[
                (keys[0].clone(), era.generation.saturating_add(1)),
                (keys[1].clone(), era.epoch),
            ])
            .await?;
        let stored = rt.clock.read(&keys).await?;
        let first = (
            stored.first().copied().unwrap_or(0).saturating_sub(1),
            stored.get(1).copied().unwrap_or(0),
        );
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(era.app.clone(), first);
        Ok(())
    }

    /// Notes the epoch of a received message: returns the later epoch that
    /// replaced it, if any. The first message of a later epoch is recorded
    /// (in the subscriber's clock too) and reported as
    /// [`Error::EpochChanged`] when an earlier one was known.
    pub async fn observe(&self, rt: &Runtime, era: &Era) -> Result<Option<u64>> {
        self.record_first(rt, era).await?;
        if era.epoch == 0 {
            return Ok(None);
        }
        let slot = (era.app.clone(), era.generation);
        let known = self.lock().get(&slot).copied();
        let known = match known {
            Some(known) => known,
            None => {
                let key = era.latest_key(&rt.config.app);
                let stored = rt.clock.read(std::slice::from_ref(&key)).await?;
                let stored = stored.first().copied().unwrap_or(0);
                let mut latest = self.lock();
                let entry = latest.entry(slot.clone()).or_insert(stored);
                *entry = (*entry).max(stored);
                *entry
            }
        };
        if era.epoch < known {
            self.report_change(rt, era, era.epoch, known);
            return Ok(Some(known));
        }
        if era.epoch == known {
            return Ok(None);
        }
        rt.clock
            .advance(&[(era.latest_key(&rt.config.app), era.epoch)])
            .await?;
        let previous = {
            let mut latest = self.lock();
            let entry = latest.entry(slot).or_insert(0);
            let previous = *entry;
            *entry = previous.max(era.epoch);
            previous
        };
        if previous < era.epoch {
            self.changed.notify_waiters();
            if previous != 0 {
                self.report_change(rt, era, previous, era.epoch);
            }
        }
        Ok(None)
    }

    /// Reports, once, that `era`'s publisher went from epoch `from` to `to`
    /// (whichever of the two messages came first).
    fn report_change(&self, rt: &Runtime, era: &Era, from: u64, to: u64) {
        let first = self
            .reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((era.app.clone(), era.generation, to));
        if first {
            rt.report(&Error::EpochChanged {
                app: era.app.clone(),
                generation: era.generation,
                previous: from,
                epoch: to,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), u64>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
