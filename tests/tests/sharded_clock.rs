//! A clock spread over several nodes passes the clock conformance suite, keeps
//! an endpoint's counters on one node, and refuses ticks it cannot make atomic.

use std::sync::Arc;

use promiscuous::core::layers::ShardedClock;
use promiscuous::core::testkit;
use promiscuous::memory::MemoryClock;
use promiscuous::Clock;

fn memory_nodes(n: usize) -> (Vec<Arc<MemoryClock>>, ShardedClock) {
    let nodes: Vec<Arc<MemoryClock>> = (0..n).map(|_| Arc::new(MemoryClock::new())).collect();
    let dyn_nodes = nodes.iter().map(|n| n.clone() as Arc<dyn Clock>).collect();
    (nodes, ShardedClock::new(dyn_nodes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_memory_clock_conforms() {
    let (_, sharded) = memory_nodes(3);
    testkit::clock::run_all(Arc::new(sharded)).await;
}

#[tokio::test]
async fn counters_spread_by_endpoint_and_cross_node_ticks_are_refused() {
    let (nodes, sharded) = memory_nodes(4);
    let endpoints: Vec<String> = (0..32).map(|i| format!("app/model{i}")).collect();
    for endpoint in &endpoints {
        let keys = vec![format!("p:0:{endpoint}"), format!("p:0:{endpoint}#7")];
        assert_eq!(sharded.tick(&keys).await.unwrap(), vec![1, 1]);
    }
    let used = nodes.iter().filter(|n| !n.snapshot().is_empty()).count();
    assert!(
        used > 1,
        "32 endpoints spread over more than one of 4 nodes"
    );
    for node in &nodes {
        for key in node.snapshot().keys() {
            let endpoint = key.trim_start_matches("p:0:").split('#').next().unwrap();
            assert!(
                node.snapshot().contains_key(&format!("p:0:{endpoint}")),
                "{key} sits with its endpoint counter"
            );
        }
    }
    let (a, b) = endpoints
        .iter()
        .flat_map(|a| endpoints.iter().map(move |b| (a, b)))
        .find(|(a, b)| sharded.node_of(&format!("p:0:{a}")) != sharded.node_of(&format!("p:0:{b}")))
        .unwrap();
    let err = sharded
        .tick(&[format!("p:0:{a}"), format!("p:0:{b}")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("several clock nodes"), "{err}");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_sharded_over_redis_namespaces_conforms() {
    use promiscuous::redis::RedisClock;
    let base = std::env::var("PROMISCUOUS_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let mut nodes: Vec<Arc<dyn Clock>> = Vec::new();
    for _ in 0..2 {
        let url = format!("{base}?prefix={}:", testkit::unique("shard"));
        nodes.push(Arc::new(
            RedisClock::connect(&url).await.expect("Redis is running"),
        ));
    }
    testkit::clock::run_all(Arc::new(ShardedClock::new(nodes).unwrap())).await;
}
