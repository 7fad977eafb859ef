//! Counters restored from the storage: a store with transactions records
//! the versions it applied with the data (SQL's `promiscuous_applied`), so
//! when the subscriber's clock lost them (its Redis restarted empty) the
//! storage still knows where it stood.

use crate::error::Result;
use crate::runtime::Runtime;

/// The versions the storage recorded for `keys`, in order; `None` when it
/// records none (a store without transactions).
pub(crate) async fn recorded(rt: &Runtime, keys: &[String]) -> Result<Option<Vec<u64>>> {
    let Some(storage) = rt.storage.as_deref() else {
        return Ok(None);
    };
    let Some(transaction) = storage.begin().await? else {
        return Ok(None);
    };
    // Read only: dropped without committing.
    Ok(Some(transaction.applied_versions(keys).await?))
}

/// Raises the clock's counter `key`, at 0, to what the storage recorded for
/// it; returns whether it did. A subscriber whose clock lost its state
/// goes on from where its database stands instead of waiting for
/// operations it applied long ago.
pub(crate) async fn from_storage(rt: &Runtime, key: &str) -> Result<bool> {
    let keys = [key.to_owned()];
    let Some(versions) = recorded(rt, &keys).await? else {
        return Ok(false);
    };
    let version = versions.first().copied().unwrap_or(0);
    if version == 0 {
        return Ok(false);
    }
    let set = rt.clock.seed(&[(key.to_owned(), version)]).await?;
    if set > 0 {
        tracing::warn!(app = %rt.config.app, key, version, "a counter at 0 in the clock was restored from the versions the database recorded (the clock lost its state?)");
    }
    Ok(set > 0)
}
