//! A process-wide registry of named instances, so that every `memory://name`
//! URL in one process reaches the same broker, clock or lock.
//!
//! Two app instances configured with `memory://bus1` share one
//! [`InProcessBroker`]; `memory://bus2` is another one. The same holds for
//! clocks and locks (each kind has its own namespace, so `memory://x` as both
//! clock and lock URL gives one clock and one lock). Tests can fetch the shared
//! instance by name to inspect it. `null://name` brokers are registered too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{InProcessBroker, MemoryClock, MemoryLock, NullBroker};

type Registry<T> = Mutex<BTreeMap<String, Arc<T>>>;

static BROKERS: Registry<InProcessBroker> = Mutex::new(BTreeMap::new());
static NULL_BROKERS: Registry<NullBroker> = Mutex::new(BTreeMap::new());
static CLOCKS: Registry<MemoryClock> = Mutex::new(BTreeMap::new());
static LOCKS: Registry<MemoryLock> = Mutex::new(BTreeMap::new());

/// The instance registered under `name`, created with `Default` when there is
/// none or when `stale` says the registered one can no longer be used.
fn shared<T: Default>(registry: &Registry<T>, name: &str, stale: impl Fn(&T) -> bool) -> Arc<T> {
    let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
    match registry.get(name) {
        Some(existing) if !stale(existing) => Arc::clone(existing),
        _ => {
            let fresh = Arc::new(T::default());
            registry.insert(name.to_owned(), Arc::clone(&fresh));
            fresh
        }
    }
}

/// The instance name in a `memory://name` or `null://name` URL: what follows
/// `://`, without a query string or trailing slashes (`""` for `memory://`).
pub fn name_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split_once('?').map_or(rest, |(name, _)| name);
    rest.trim_end_matches('/')
}

/// The in-process broker named `name`. A closed one is replaced by a new one,
/// so an app started after another closed the shared broker still works.
pub fn broker(name: &str) -> Arc<InProcessBroker> {
    shared(&BROKERS, name, InProcessBroker::is_closed)
}

/// The Null broker named `name`; a closed one is replaced by a new one.
pub fn null_broker(name: &str) -> Arc<NullBroker> {
    shared(&NULL_BROKERS, name, NullBroker::is_closed)
}

/// The memory clock named `name`.
pub fn clock(name: &str) -> Arc<MemoryClock> {
    shared(&CLOCKS, name, |_| false)
}

/// The memory lock named `name`.
pub fn lock(name: &str) -> Arc<MemoryLock> {
    shared(&LOCKS, name, |_| false)
}

/// Unregisters every instance named `name`: the next lookup creates new ones.
/// Holders of the old instances keep using them.
pub fn forget(name: &str) {
    BROKERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
    NULL_BROKERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
    CLOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
    LOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use promiscuous_core::traits::Broker;

    #[test]
    fn names_come_from_urls() {
        assert_eq!(name_of("memory://bus1"), "bus1");
        assert_eq!(name_of("memory://bus1/"), "bus1");
        assert_eq!(name_of("memory://bus1?x=1"), "bus1");
        assert_eq!(name_of("memory://"), "");
        assert_eq!(name_of("null://"), "");
    }

    #[tokio::test]
    async fn same_name_same_instance_until_closed_or_forgotten() {
        let a = broker("named-test-bus");
        assert!(Arc::ptr_eq(&a, &broker("named-test-bus")));
        assert!(!Arc::ptr_eq(&a, &broker("named-test-other")));
        a.close().await.unwrap();
        let b = broker("named-test-bus");
        assert!(!Arc::ptr_eq(&a, &b) && !b.is_closed());

        let clock_a = clock("named-test-bus");
        assert!(Arc::ptr_eq(&clock_a, &clock("named-test-bus")));
        let lock_a = lock("named-test-bus");
        assert!(Arc::ptr_eq(&lock_a, &lock("named-test-bus")));
        let null_a = null_broker("named-test-bus");
        assert!(Arc::ptr_eq(&null_a, &null_broker("named-test-bus")));

        forget("named-test-bus");
        assert!(!Arc::ptr_eq(&b, &broker("named-test-bus")));
        assert!(!Arc::ptr_eq(&clock_a, &clock("named-test-bus")));
        assert!(!Arc::ptr_eq(&lock_a, &lock("named-test-bus")));
        assert!(!Arc::ptr_eq(&null_a, &null_broker("named-test-bus")));
    }
}
