//! The core conformance suites, against a real Redis server.

mod common;

use std::sync::Arc;

use promiscuous_core::backend::factory_for;
use promiscuous_core::testkit;
use promiscuous_core::traits::{Clock, Lock};

#[tokio::test(flavor = "multi_thread")]
async fn clock_conforms() {
    let (url, _) = common::unique_url("clock");
    let clock: Arc<dyn Clock> = Arc::new(common::clock(&url).await);
    testkit::clock::run_all(clock).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_conforms() {
    let (url, _) = common::unique_url("lock");
    let lock = common::lock(&url).await;
    testkit::lock::run_all(&lock).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn factory_built_clock_and_lock_conform() {
    let (url, _) = common::unique_url("factory");
    let factory = factory_for(&url).expect("the redis scheme must be registered");
    assert_eq!((factory.scheme, factory.feature), ("redis", "redis"));
    assert!(factory.broker.is_none(), "redis is not a broker");
    let build_clock = factory.clock.expect("the redis factory builds clocks");
    let build_lock = factory.lock.expect("the redis factory builds locks");
    let clock: Arc<dyn Clock> = match build_clock(&url).await {
        Ok(clock) => clock,
        Err(e) => panic!("these tests need a Redis server at {url}: {e}"),
    };
    let lock: Arc<dyn Lock> = match build_lock(&url).await {
        Ok(lock) => lock,
        Err(e) => panic!("these tests need a Redis server at {url}: {e}"),
    };
    assert_eq!((clock.name(), lock.name()), ("redis", "redis"));
    testkit::clock::run_all(clock).await;
    testkit::lock::run_all(lock.as_ref()).await;
}
