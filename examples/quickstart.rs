//! Quick start: a publisher app and a subscriber app in one process, with no
//! server. The publisher creates a `User`; the subscriber's `after_create`
//! greets it.
//!
//! Run with `cargo run --example quickstart`.

use std::sync::Arc;
use std::time::Duration;

use promiscuous::memory::MemoryStorage;
use promiscuous::Promiscuous;

/// The publisher app's model.
mod publisher_app {
    use promiscuous::Publish;
    use serde::{Deserialize, Serialize};

    /// A user, as the publisher owns it.
    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    #[publish(to = "crowdtap/user")]
    pub struct User {
        /// Primary key.
        pub id: i64,
        /// Published.
        #[publish]
        pub name: String,
        /// Published.
        #[publish]
        pub email: String,
        /// Not published: it never leaves the publisher.
        pub password_digest: String,
    }
}

/// The subscriber app's model.
mod subscriber_app {
    use promiscuous::{BoxError, Callbacks, Context, Subscribe};
    use serde::{Deserialize, Serialize};

    /// The subscriber's copy of a user.
    #[derive(Debug, Serialize, Deserialize, Subscribe)]
    #[subscribe(from = "crowdtap/user", callbacks)]
    pub struct User {
        /// The publisher's id.
        pub id: i64,
        /// Subscribed.
        #[subscribe]
        pub name: String,
        /// Subscribed.
        #[subscribe]
        pub email: String,
    }

    #[promiscuous::async_trait]
    impl Callbacks for User {
        async fn after_create(&self, _ctx: &Context) -> Result<(), BoxError> {
            println!("Hi {}!", self.name);
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    // Start the subscriber first: its worker declares the queue.
    let subscriber = Promiscuous::configure()
        .app("quickstart-subscriber")
        .broker_url("memory://quickstart")
        .redis_url("memory://quickstart")
        .storage(Arc::new(MemoryStorage::new()))
        .subscriber::<subscriber_app::User>()
        .build()
        .await?;
    let mut worker = subscriber.subscribe().await?;

    let publisher = Promiscuous::configure()
        .app("crowdtap")
        .broker_url("memory://quickstart")
        .redis_url("memory://quickstart")
        .storage(Arc::new(MemoryStorage::new()))
        .build()
        .await?;
    publisher
        .create(&publisher_app::User {
            id: 1,
            name: "Yoda".into(),
            email: "yoda@dagobah.example".into(),
            password_digest: "secret".into(),
        })
        .await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while worker.stats().applied < 1 {
        if tokio::time::Instant::now() > deadline {
            return Err("the subscriber did not receive the user within 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.shutdown().await;
    Ok(())
}
