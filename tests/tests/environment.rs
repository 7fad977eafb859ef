//! URLs are read from the environment when the builder is not given any.
//! (Its own test binary: it changes the process environment.)

use std::sync::Arc;

use promiscuous::memory::MemoryStorage;
use promiscuous::{Promiscuous, ENV_AMQP_URL, ENV_APP, ENV_REDIS_URL};

#[tokio::test]
async fn urls_and_app_name_come_from_the_environment() {
    // SAFETY: this binary has a single test, so nothing reads the environment concurrently.
    unsafe {
        std::env::set_var(ENV_APP, "from-env");
        std::env::set_var(ENV_AMQP_URL, "null://");
        std::env::set_var(ENV_REDIS_URL, "memory://from-env");
    }
    let app = Promiscuous::configure()
        .storage(Arc::new(MemoryStorage::new()))
        .build()
        .await
        .unwrap();
    assert_eq!(app.app(), "from-env");
    assert_eq!(app.broker().name(), "null");
    assert_eq!(app.clock().name(), "memory");
    assert_eq!(app.lock().name(), "memory");
}
