//! Read dependencies (causal scopes, `depends_on`, `find`) and several writes
//! published as one message, with deliveries reordered on purpose.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{applied, fresh, settled, Apps, Journal};
use promiscuous::causal_scope;
use promiscuous::core::testkit::eventually;
use promiscuous::memory::{MemoryClock, MemoryLock, MemoryStorage, NullBroker};
use promiscuous::Promiscuous;
use serde_json::json;

static JOURNAL: Journal = Journal::new();

mod models {
    use super::JOURNAL;
    use promiscuous::{BoxError, Callbacks, Context, Publish, Subscribe};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Author {
        pub id: i64,
        #[publish]
        pub name: String,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, Publish)]
    pub struct Post {
        pub id: i64,
        #[publish]
        pub author_id: i64,
        #[publish]
        pub title: String,
    }

    pub mod replica {
        use super::*;

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(callbacks)]
        pub struct Author {
            pub id: i64,
            #[subscribe]
            pub name: String,
        }

        #[derive(Debug, Serialize, Deserialize, Subscribe)]
        #[subscribe(callbacks)]
        pub struct Post {
            pub id: i64,
            #[subscribe]
            pub author_id: i64,
            #[subscribe]
            pub title: String,
        }

        #[promiscuous::async_trait]
        impl Callbacks for Author {
            async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(&ctx.app, format!("author {} {}", self.id, self.name));
                Ok(())
            }
            async fn after_update(&self, ctx: &Context) -> Result<(), BoxError> {
                self.after_create(ctx).await
            }
        }

        #[promiscuous::async_trait]
        impl Callbacks for Post {
            async fn after_create(&self, ctx: &Context) -> Result<(), BoxError> {
                JOURNAL.push(&ctx.app, format!("post {} {}", self.id, self.title));
                Ok(())
            }
        }
    }
}

use models::{Author, Post};

/// A publisher recording its messages on the Null broker.
async fn recorder(app: &str) -> (Promiscuous, Arc<NullBroker>) {
    let null = Arc::new(NullBroker::new());
    let publisher = Promiscuous::configure()
        .app(app)
        .broker(null.clone())
        .clock(Arc::new(MemoryClock::new()))
        .lock(Arc::new(MemoryLock::new()))
        .storage(Arc::new(MemoryStorage::new()))
        .build()
        .await
        .unwrap();
    (publisher, null)
}

/// Publishes author 1 then post 10 in one causal scope, recording the messages.
async fn author_then_post_in_a_scope() -> (String, Arc<NullBroker>) {
    let app = fresh("blog");
    let (publisher, null) = recorder(&app).await;
    causal_scope(async {
        publisher
            .create(&Author {
                id: 1,
                name: "Ann".into(),
            })
            .await
            .unwrap();
        publisher
            .create(&Post {
                id: 10,
                author_id: 1,
                title: "Hello".into(),
            })
            .await
            .unwrap();
    })
    .await;
    (app, null)
}

#[tokio::test]
async fn a_write_in_a_causal_scope_waits_for_what_the_scope_wrote_before() {
    let (app, null) = author_then_post_in_a_scope().await;
    let messages = null.published();
    let post = messages[1].message().unwrap();
    let reads = &post.operations[0].dependencies.read;
    assert_eq!(
        reads.len(),
        1,
        "the post depends on the author written before it: {reads:?}"
    );
    assert!(
        reads[0].key.starts_with(&format!("{app}/author#")),
        "{reads:?}"
    );

    let apps = Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Author>()
            .subscriber::<models::replica::Post>()
    })
    .await;
    let mut worker = apps.worker().await;
    apps.broker
        .inject("mailer", &messages[1].endpoint, &messages[1].payload);
    let early = eventually(Duration::from_millis(200), || async {
        worker.stats().applied > 0
    })
    .await;
    assert!(!early, "the post must wait for its author");
    apps.broker
        .inject("mailer", &messages[0].endpoint, &messages[0].payload);
    applied(&worker, 2).await;
    assert_eq!(JOURNAL.entries(&app), vec!["author 1 Ann", "post 10 Hello"]);
    worker.shutdown().await;
}

#[tokio::test]
async fn depends_on_and_find_record_read_dependencies_only_inside_a_scope() {
    let app = fresh("blog");
    let (publisher, null) = recorder(&app).await;
    let author = Author {
        id: 2,
        name: "Bob".into(),
    };
    publisher.create(&author).await.unwrap();
    publisher
        .create(&Author {
            id: 3,
            name: "Cy".into(),
        })
        .await
        .unwrap();
    publisher
        .create(&Post {
            id: 1,
            author_id: 2,
            title: "outside".into(),
        })
        .await
        .unwrap();
    causal_scope(async {
        publisher.depends_on(&author);
        let found: Option<Author> = publisher.find(json!(3)).await.unwrap();
        assert_eq!(found.unwrap().name, "Cy");
        publisher
            .create(&Post {
                id: 2,
                author_id: 2,
                title: "inside".into(),
            })
            .await
            .unwrap();
    })
    .await;
    let messages = null.published_messages().unwrap();
    assert!(
        messages[2].operations[0].dependencies.read.is_empty(),
        "nothing is recorded outside a scope"
    );
    let reads = &messages[3].operations[0].dependencies.read;
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(
        reads.iter().all(|d| d.version == 1),
        "each author was written once: {reads:?}"
    );
}

#[tokio::test]
async fn read_dependencies_on_endpoints_a_subscriber_does_not_bind_are_ignored() {
    let (_, null) = author_then_post_in_a_scope().await;
    let post = &null.published()[1];
    let apps = Apps::new(&fresh("unused"), |b| {
        b.subscriber::<models::replica::Post>()
    })
    .await;
    let mut worker = apps.worker().await;
    apps.broker.inject("mailer", &post.endpoint, &post.payload);
    applied(&worker, 1).await;
    assert_eq!(
        worker.stats().recovered,
        0,
        "nothing waited for an author it will never receive"
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn several_writes_travel_as_one_message_and_are_applied_together() {
    let app = fresh("blog");
    let apps = Apps::new(&app, |b| {
        b.subscriber::<models::replica::Author>()
            .subscriber::<models::replica::Post>()
    })
    .await;
    let mut worker = apps.worker().await;
    let mut tx = apps.publisher.transaction();
    tx.create(&Author {
        id: 5,
        name: "Eve".into(),
    })
    .unwrap();
    tx.create(&Post {
        id: 50,
        author_id: 5,
        title: "First".into(),
    })
    .unwrap();
    assert_eq!(tx.len(), 2);
    tx.commit().await.unwrap();
    applied(&worker, 2).await;
    // The message went to both endpoints; the second copy is a duplicate.
    settled(&worker, 3).await;
    let stats = worker.stats();
    assert_eq!(
        (stats.received, stats.applied, stats.duplicates),
        (2, 2, 1),
        "{stats:?}"
    );
    assert_eq!(
        apps.source.records("Author").len(),
        1,
        "the transaction wrote the publisher's storage"
    );
    assert_eq!(apps.replica.records("Post")[0]["title"], "First");
    worker.shutdown().await;

    let (publisher, null) = recorder(&fresh("blog")).await;
    let mut tx = publisher.transaction();
    tx.create(&Author {
        id: 1,
        name: "A".into(),
    })
    .unwrap()
    .create(&Post {
        id: 1,
        author_id: 1,
        title: "P".into(),
    })
    .unwrap();
    tx.commit_with(|| async { Ok(()) }).await.unwrap();
    let published = null.published();
    assert_eq!(published.len(), 2, "one message, sent to each endpoint");
    assert_eq!(published[0].payload, published[1].payload);
    let message = published[0].message().unwrap();
    assert_eq!(message.operations.len(), 2);
}

/// On a storage without transactions a write that fails leaves the earlier
/// ones in place: they are published, and the failed one becomes a noop, so
/// subscribers end as the storage is.
#[tokio::test]
async fn a_transaction_failing_half_way_publishes_what_landed_and_a_noop_for_the_rest() {
    let (publisher, null) = recorder(&fresh("blog")).await;
    let mut tx = publisher.transaction();
    tx.create(&Author {
        id: 1,
        name: "A".into(),
    })
    .unwrap();
    tx.update(&Post {
        id: 9,
        author_id: 1,
        title: "missing".into(),
    })
    .unwrap();
    let err = tx.commit().await.unwrap_err();
    let chain = promiscuous::core::error::chain(&err);
    assert!(chain.contains("no Post with id 9 to update"), "{chain}");
    let message = null.published()[0].message().unwrap();
    let kinds: Vec<_> = message.operations.iter().map(|op| op.operation).collect();
    assert_eq!(
        kinds,
        vec![
            promiscuous::OperationKind::Create,
            promiscuous::OperationKind::Noop
        ],
        "the author was written, the post was not"
    );
    assert_eq!(
        message.operations[0].attributes.as_ref().unwrap()["name"],
        "A"
    );
}

mod scoped_chain {
    use super::*;
    use proptest::prelude::*;

    /// Every write of one causal scope depends on all the writes before it,
    /// so however the messages are delivered, the subscriber applies them in
    /// exactly the order they were published.
    fn check(writes: Vec<(bool, i64)>, order: Vec<usize>) -> Result<(), TestCaseError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = fresh("chain");
            let (publisher, null) = recorder(&app).await;
            let mut expected = Vec::new();
            causal_scope(async {
                let mut authors = std::collections::BTreeSet::new();
                for (i, &(is_author, id)) in writes.iter().enumerate() {
                    if is_author {
                        let author = Author {
                            id,
                            name: format!("v{i}"),
                        };
                        if authors.insert(id) {
                            publisher.create(&author).await.unwrap();
                        } else {
                            publisher.update(&author).await.unwrap();
                        }
                        expected.push(format!("author {id} v{i}"));
                    } else {
                        let post = Post {
                            id: 1000 + i as i64,
                            author_id: id,
                            title: format!("t{i}"),
                        };
                        publisher.create(&post).await.unwrap();
                        expected.push(format!("post {} t{i}", 1000 + i));
                    }
                }
            })
            .await;
            let messages = null.published();
            let apps = Apps::new(&fresh("unused"), |b| {
                b.subscriber::<models::replica::Author>()
                    .subscriber::<models::replica::Post>()
                    .runners(4)
            })
            .await;
            let mut worker = apps.worker().await;
            let deliveries: Vec<usize> =
                order.into_iter().filter(|&i| i < messages.len()).collect();
            for &i in &deliveries {
                apps.broker
                    .inject("mailer", &messages[i].endpoint, &messages[i].payload);
            }
            settled(&worker, deliveries.len() as u64).await;
            let recovered = worker.stats().recovered;
            worker.shutdown().await;
            prop_assert_eq!(JOURNAL.entries(&app), expected);
            prop_assert_eq!(recovered, 0);
            Ok(())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        #[test]
        fn a_causal_chain_is_applied_in_publish_order_whatever_the_delivery_order(
            (writes, order) in prop::collection::vec((any::<bool>(), 1i64..4), 1..12).prop_flat_map(|w| {
                let n = w.len();
                let originals: Vec<usize> = (0..n).collect();
                (Just(w), (Just(originals).prop_shuffle(), prop::collection::vec(0..n, 0..n)).prop_map(|(mut o, d)| { o.extend(d); o }).prop_shuffle())
            })
        ) {
            check(writes, order)?;
        }
    }
}
