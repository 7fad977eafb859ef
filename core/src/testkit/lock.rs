//! Conformance suite for [`Lock`] implementations.
//!
//! Every function uses its own keys (named with [`unique`]), so the functions
//! can run in parallel against one shared server. Expiry is exercised with
//! short real time-to-lives (300 ms) and sleeps; every function releases the
//! locks it took, taking over the expired ones first.

use std::time::Duration;

use super::{unique, PATIENCE};
use crate::traits::{Acquisition, ExpiredLock, Lock};

/// A time-to-live the suite never outlives.
const LONG: Duration = Duration::from_secs(60);
/// A time-to-live the suite outlives by sleeping [`PAST_SHORT`].
const SHORT: Duration = Duration::from_millis(300);
/// Sleeping this long lets a [`SHORT`] lock expire.
const PAST_SHORT: Duration = Duration::from_millis(600);

async fn acquire(
    lock: &dyn Lock,
    key: &str,
    owner: &str,
    ttl: Duration,
    recovery: &[u8],
) -> Option<Acquisition> {
    match tokio::time::timeout(PATIENCE, lock.try_acquire(key, owner, ttl, recovery)).await {
        Ok(Ok(acquisition)) => acquisition,
        Ok(Err(e)) => panic!("{}: try_acquire {key} for {owner} failed: {e}", lock.name()),
        Err(_) => panic!("{}: try_acquire {key} hung", lock.name()),
    }
}

async fn release(lock: &dyn Lock, key: &str, owner: &str) -> bool {
    match tokio::time::timeout(PATIENCE, lock.release(key, owner)).await {
        Ok(Ok(released)) => released,
        Ok(Err(e)) => panic!("{}: release {key} by {owner} failed: {e}", lock.name()),
        Err(_) => panic!("{}: release {key} hung", lock.name()),
    }
}

async fn extend(lock: &dyn Lock, key: &str, owner: &str, ttl: Duration) -> bool {
    match tokio::time::timeout(PATIENCE, lock.extend(key, owner, ttl)).await {
        Ok(Ok(extended)) => extended,
        Ok(Err(e)) => panic!("{}: extend {key} by {owner} failed: {e}", lock.name()),
        Err(_) => panic!("{}: extend {key} hung", lock.name()),
    }
}

async fn expired(lock: &dyn Lock, prefix: &str, limit: usize) -> Vec<ExpiredLock> {
    match tokio::time::timeout(PATIENCE, lock.expired(prefix, limit)).await {
        Ok(Ok(locks)) => locks,
        Ok(Err(e)) => panic!("{}: expired({prefix}, {limit}) failed: {e}", lock.name()),
        Err(_) => panic!("{}: expired({prefix}) hung", lock.name()),
    }
}

/// A free lock is acquired: `Some(Free)`.
pub async fn acquire_free(lock: &dyn Lock) {
    assert!(!lock.name().is_empty(), "Lock::name must not be empty");
    let key = unique("lock");
    assert_eq!(
        acquire(lock, &key, "owner-a", LONG, b"a").await,
        Some(Acquisition::Free),
        "{}: a free lock must be acquired as Free",
        lock.name()
    );
    assert!(release(lock, &key, "owner-a").await);
}

/// While one owner holds a lock, another owner's `try_acquire` returns `None`.
pub async fn held_lock_refuses_others(lock: &dyn Lock) {
    let key = unique("lock");
    assert_eq!(
        acquire(lock, &key, "owner-a", LONG, b"a").await,
        Some(Acquisition::Free)
    );
    assert_eq!(
        acquire(lock, &key, "owner-b", LONG, b"b").await,
        None,
        "{}: a held lock must not be acquired by another owner",
        lock.name()
    );
    assert!(release(lock, &key, "owner-a").await);
}

/// Fails the suite with `what` unless `ok`, naming the lock.
fn expect(lock: &dyn Lock, ok: bool, what: &str) {
    assert!(ok, "{}: {what}", lock.name());
}

/// Release by an owner that does not hold the lock returns false and leaves it
/// held; release by the owner returns true, after which another owner acquires
/// it as `Free` and a second release by the old owner returns false.
pub async fn release_only_by_owner(lock: &dyn Lock) {
    let key = unique("lock");
    let free = Some(Acquisition::Free);
    assert_eq!(acquire(lock, &key, "owner-a", LONG, b"a").await, free);
    let released = release(lock, &key, "owner-b").await;
    expect(lock, !released, "release by a non-owner must return false");
    let taken = acquire(lock, &key, "owner-c", LONG, b"c").await;
    expect(
        lock,
        taken.is_none(),
        "a release by a non-owner must leave the lock held",
    );
    let released = release(lock, &key, "owner-a").await;
    expect(lock, released, "release by the owner must return true");
    let again = release(lock, &key, "owner-a").await;
    expect(lock, !again, "releasing a released lock must return false");
    let taken = acquire(lock, &key, "owner-b", LONG, b"b").await;
    expect(
        lock,
        taken == free,
        "a released lock must be acquired as Free",
    );
    assert!(release(lock, &key, "owner-b").await);
    let never = release(lock, &unique("never-locked"), "owner-a").await;
    expect(
        lock,
        !never,
        "releasing a key never locked must return false",
    );
}

/// The owner extends its lock past its first time-to-live; a non-owner's
/// extend, and an extend of a free key, return false.
pub async fn extend_only_by_owner(lock: &dyn Lock) {
    let key = unique("lock");
    let free = Some(Acquisition::Free);
    assert_eq!(acquire(lock, &key, "owner-a", SHORT, b"a").await, free);
    let by_other = extend(lock, &key, "owner-b", LONG).await;
    expect(lock, !by_other, "extend by a non-owner must return false");
    let by_owner = extend(lock, &key, "owner-a", LONG).await;
    expect(lock, by_owner, "extend by the owner must return true");
    tokio::time::sleep(PAST_SHORT).await;
    let taken = acquire(lock, &key, "owner-b", LONG, b"b").await;
    expect(
        lock,
        taken.is_none(),
        "an extended lock must still be held after its first time-to-live",
    );
    let released = release(lock, &key, "owner-a").await;
    expect(lock, released, "the owner must release its extended lock");
    let extended = extend(lock, &key, "owner-a", LONG).await;
    expect(
        lock,
        !extended,
        "extending a released lock must return false",
    );
}

/// A lock that expired unreleased is taken over: the new owner gets
/// `TookOverExpired` with the previous owner and its recovery data; the
/// previous owner can no longer release or extend it; the new owner holds it.
pub async fn expired_lock_is_taken_over(lock: &dyn Lock) {
    let key = unique("lock");
    assert_eq!(
        acquire(lock, &key, "owner-a", SHORT, b"recovery of a").await,
        Some(Acquisition::Free)
    );
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        !release(lock, &key, "owner-a").await,
        "{}: an expired lock must not be released (it stays for recovery)",
        lock.name()
    );
    assert!(
        !extend(lock, &key, "owner-a", LONG).await,
        "{}: an expired lock must not be extended",
        lock.name()
    );
    assert_eq!(
        acquire(lock, &key, "owner-b", LONG, b"recovery of b").await,
        Some(Acquisition::TookOverExpired(ExpiredLock {
            key: key.clone(),
            owner: "owner-a".to_owned(),
            recovery: b"recovery of a".to_vec(),
        })),
        "{}: acquiring an expired lock must hand over the previous owner's data",
        lock.name()
    );
    assert_eq!(
        acquire(lock, &key, "owner-c", LONG, b"c").await,
        None,
        "{}: the lock must be held by the owner that took it over",
        lock.name()
    );
    assert!(
        !release(lock, &key, "owner-a").await,
        "{}: the previous owner must not release a lock taken over",
        lock.name()
    );
    assert!(
        release(lock, &key, "owner-b").await,
        "{}: the owner that took over must release it",
        lock.name()
    );
    assert_eq!(
        acquire(lock, &key, "owner-c", LONG, b"c").await,
        Some(Acquisition::Free),
        "{}: a lock released after a takeover is Free",
        lock.name()
    );
    assert!(release(lock, &key, "owner-c").await);
}

/// `expired(prefix, limit)` lists the locks under `prefix` that expired without
/// being released, with their owner and data, oldest first, at most `limit`;
/// it never lists held, released or other-prefix locks, nor a lock once it
/// was taken over.
pub async fn expired_lists_unreleased(lock: &dyn Lock) {
    let prefix = format!("{}/", unique("expiring"));
    let other = format!("{}/", unique("elsewhere"));
    let key = |name: &str| format!("{prefix}{name}");
    for name in ["first", "second", "third"] {
        assert_eq!(
            acquire(
                lock,
                &key(name),
                &format!("owner-{name}"),
                SHORT,
                name.as_bytes()
            )
            .await,
            Some(Acquisition::Free)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    acquire(lock, &key("released"), "owner-r", SHORT, b"released").await;
    acquire(lock, &key("held"), "owner-h", LONG, b"held").await;
    acquire(lock, &format!("{other}first"), "owner-o", SHORT, b"other").await;
    assert!(release(lock, &key("released"), "owner-r").await);
    assert!(
        expired(lock, &prefix, 10).await.is_empty(),
        "{}: no lock under the prefix has expired yet",
        lock.name()
    );
    tokio::time::sleep(PAST_SHORT).await;

    let expected = |names: &[&str]| -> Vec<ExpiredLock> {
        names
            .iter()
            .map(|name| ExpiredLock {
                key: key(name),
                owner: format!("owner-{name}"),
                recovery: name.as_bytes().to_vec(),
            })
            .collect()
    };
    assert_eq!(
        expired(lock, &prefix, 10).await,
        expected(&["first", "second", "third"]),
        "{}: expired() must list exactly the expired, unreleased locks under the prefix, \
         oldest first",
        lock.name()
    );
    assert_eq!(
        expired(lock, &prefix, 2).await,
        expected(&["first", "second"]),
        "{}: expired() must respect its limit, keeping the oldest",
        lock.name()
    );
    assert!(
        expired(lock, &prefix, 10).await.len() == 3,
        "{}: listing expired locks must not remove them",
        lock.name()
    );
    assert!(matches!(
        acquire(lock, &key("second"), "owner-new", LONG, b"new").await,
        Some(Acquisition::TookOverExpired(_))
    ));
    assert_eq!(
        expired(lock, &prefix, 10).await,
        expected(&["first", "third"]),
        "{}: a lock taken over must no longer be listed as expired",
        lock.name()
    );
    assert_eq!(
        expired(lock, &other, 10).await.len(),
        1,
        "{}: the other prefix's expired lock is listed under its own prefix",
        lock.name()
    );
    for key in [key("first"), key("third"), format!("{other}first")] {
        assert!(matches!(
            acquire(lock, &key, "owner-cleanup", LONG, b"").await,
            Some(Acquisition::TookOverExpired(_))
        ));
        assert!(release(lock, &key, "owner-cleanup").await);
    }
    assert!(release(lock, &key("second"), "owner-new").await);
    assert!(release(lock, &key("held"), "owner-h").await);
    assert!(
        expired(lock, &prefix, 10).await.is_empty(),
        "{}: released locks must never be listed as expired",
        lock.name()
    );
}

/// Runs every function of this suite against `lock`.
pub async fn run_all(lock: &dyn Lock) {
    acquire_free(lock).await;
    held_lock_refuses_others(lock).await;
    release_only_by_owner(lock).await;
    extend_only_by_owner(lock).await;
    expired_lock_is_taken_over(lock).await;
    expired_lists_unreleased(lock).await;
}
