//! A clock spread over several clocks (Redis servers), so the version store scales out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;

use crate::dependency::fnv1a64;
use crate::error::BackendError;
use crate::traits::Clock;

/// Spreads counters over several clocks by endpoint.
///
/// Every counter of one endpoint (`…:app/model` and `…:app/model#bucket`)
/// lives on the same node, chosen by FNV-1a of the endpoint, so the tick of an
/// operation on one endpoint stays one atomic step on one node. A tick whose
/// keys span nodes (a transaction over endpoints placed on different nodes) is
/// refused: it could not be atomic, and non-atomic ticks of two operations
/// can order their counters in opposite ways and deadlock subscribers.
/// Reads, advances and waits are split by node and run concurrently.
#[derive(Debug, Clone)]
pub struct ShardedClock {
    nodes: Vec<Arc<dyn Clock>>,
}

/// The endpoint a namespaced counter key belongs to. Namespace parts (`p`,
/// generation, app names) never hold a `/`, so the first `/` is the
/// endpoint's; the endpoint runs from the `:` before it up to `#` (a record
/// bucket) or `@` (a weak-mode record, whose id may hold anything).
fn endpoint_of(key: &str) -> &str {
    let Some(slash) = key.find('/') else {
        return key.split(['#', '@']).next().unwrap_or(key);
    };
    let start = key[..slash].rfind(':').map_or(0, |i| i + 1);
    let end = key[slash..]
        .find(['#', '@'])
        .map_or(key.len(), |i| slash + i);
    &key[start..end]
}

impl ShardedClock {
    /// A clock over `nodes`; with one node it behaves exactly as that node.
    pub fn new(nodes: Vec<Arc<dyn Clock>>) -> Result<Self, BackendError> {
        if nodes.is_empty() {
            return Err(BackendError::new(
                "sharded",
                "new",
                "clock nodes",
                "a sharded clock needs at least one node",
            ));
        }
        Ok(Self { nodes })
    }

    /// How many nodes the counters are spread over.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no node (never true for a built clock).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node index of a counter key.
    pub fn node_of(&self, key: &str) -> usize {
        (fnv1a64(endpoint_of(key).as_bytes()) % self.nodes.len() as u64) as usize
    }

    /// Groups positions of `keys` by node.
    fn split(&self, keys: impl Iterator<Item = String>) -> BTreeMap<usize, Vec<(usize, String)>> {
        let mut groups: BTreeMap<usize, Vec<(usize, String)>> = BTreeMap::new();
        for (position, key) in keys.enumerate() {
            groups
                .entry(self.node_of(&key))
                .or_default()
                .push((position, key));
        }
        groups
    }
}

#[async_trait]
impl Clock for ShardedClock {
    fn name(&self) -> &'static str {
        "sharded"
    }

    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        let groups = self.split(keys.iter().cloned());
        match groups.len() {
            0 => Ok(Vec::new()),
            1 => {
                let (&node, _) = groups.iter().next().ok_or_else(|| BackendError::new("sharded", "tick", "", "no node"))?;
                self.nodes[node].tick(keys).await
            }
            _ => Err(BackendError::new(
                "sharded",
                "tick",
                keys.join(", "),
                "the counters of one operation are on several clock nodes, so they cannot advance atomically; keep the endpoints of one transaction on one node (fewer nodes, or publish them separately)",
            )),
        }
    }

    async fn read(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        let groups = self.split(keys.iter().cloned());
        let reads = groups.into_iter().map(|(node, entries)| async move {
            let names: Vec<String> = entries.iter().map(|(_, k)| k.clone()).collect();
            let values = self.nodes[node].read(&names).await?;
            Ok::<_, BackendError>(
                entries
                    .into_iter()
                    .map(|(p, _)| p)
                    .zip(values)
                    .collect::<Vec<_>>(),
            )
        });
        let mut out = vec![0; keys.len()];
        for (position, value) in try_join_all(reads).await?.into_iter().flatten() {
            out[position] = value;
        }
        Ok(out)
    }

    async fn advance(&self, targets: &[(String, u64)]) -> Result<(), BackendError> {
        let mut groups: BTreeMap<usize, Vec<(String, u64)>> = BTreeMap::new();
        for (key, value) in targets {
            groups
                .entry(self.node_of(key))
                .or_default()
                .push((key.clone(), *value));
        }
        try_join_all(
            groups
                .into_iter()
                .map(|(node, group)| async move { self.nodes[node].advance(&group).await }),
        )
        .await?;
        Ok(())
    }

    async fn wait_until(
        &self,
        key: &str,
        value: u64,
        timeout: Duration,
    ) -> Result<u64, BackendError> {
        self.nodes[self.node_of(key)]
            .wait_until(key, value, timeout)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_of;

    #[test]
    fn keys_route_by_endpoint() {
        assert_eq!(endpoint_of("p:0:app/user#12"), "app/user");
        assert_eq!(endpoint_of("p:0:app/user"), "app/user");
        assert_eq!(endpoint_of("s:sub:app:0:app/user#3"), "app/user");
        assert_eq!(endpoint_of("s:sub:app:0:app/user@\"x:y#z/w\""), "app/user");
        assert_eq!(endpoint_of("no-endpoint#4"), "no-endpoint");
    }
}
