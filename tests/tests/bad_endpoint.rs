//! A publisher whose `to` is not a valid endpoint is refused when an app is
//! built, naming the model, instead of failing at its first publish. Its own
//! test binary: the bad definition would refuse every app built in it.

use std::sync::Arc;

use promiscuous::memory::MemoryStorage;
use promiscuous::{Error, Promiscuous, Publish};
use serde::{Deserialize, Serialize};

/// Published to an endpoint with a space and a dot.
#[derive(Debug, Clone, Serialize, Deserialize, Publish)]
#[publish(to = "bad name/x.y")]
pub struct Misrouted {
    /// The id.
    pub id: i64,
    /// Published.
    #[publish]
    pub name: String,
}

#[tokio::test]
async fn a_bad_to_is_refused_when_the_app_is_built() {
    let refused = Promiscuous::configure()
        .app("shop")
        .broker_url("memory://bad-endpoint")
        .redis_url("memory://bad-endpoint")
        .storage(Arc::new(MemoryStorage::new()))
        .no_subscribers()
        .build()
        .await
        .expect_err("an invalid endpoint is refused");
    match refused {
        Error::Definition { model, problem } => {
            assert_eq!(model, "Misrouted");
            assert!(problem.contains("bad name/x.y"), "{problem}");
            assert!(problem.contains("`to`"), "{problem}");
        }
        other => panic!("expected a definition error, got {other}"),
    }
}
