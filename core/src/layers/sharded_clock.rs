//! A clock spread over several clocks (Redis servers), so the version store scales out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;

use crate::dependency::{endpoint_of_key as endpoint_of, fnv1a64};
use crate::error::BackendError;
use crate::traits::{Clock, IntentRecord, RecordedIntent, Step, Versions};

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

    /// The one node all of `keys` live on (`None` for no key); refuses keys
    /// spread over several nodes, which could not advance atomically.
    fn single_node<'a>(
        &self,
        keys: impl Iterator<Item = &'a String>,
        operation: &'static str,
    ) -> Result<Option<usize>, BackendError> {
        let keys: Vec<&String> = keys.collect();
        let mut nodes = keys.iter().map(|key| self.node_of(key));
        let Some(first) = nodes.next() else {
            return Ok(None);
        };
        if nodes.all(|node| node == first) {
            return Ok(Some(first));
        }
        Err(BackendError::new(
            "sharded",
            operation,
            keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
            "the counters of one operation are on several clock nodes, so they cannot advance atomically; keep the endpoints of one transaction on one node (fewer nodes, or publish them separately)",
        ))
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

    /// The latest of the nodes' epochs: a node whose state was recreated
    /// makes the whole clock newer.
    fn epoch(&self) -> u64 {
        self.nodes
            .iter()
            .map(|node| node.epoch())
            .max()
            .unwrap_or(0)
    }

    async fn check(&self) -> Result<(), BackendError> {
        for node in &self.nodes {
            node.check().await?;
        }
        Ok(())
    }

    async fn tick(&self, keys: &[String]) -> Result<Vec<u64>, BackendError> {
        match self.single_node(keys.iter(), "tick")? {
            Some(node) => self.nodes[node].tick(keys).await,
            None => Ok(Vec::new()),
        }
    }

    async fn take(&self, step: &Step<'_>) -> Result<Versions, BackendError> {
        let Some(node) = self.single_node(step.increments.iter(), "take")? else {
            return Ok(Versions {
                ticked: Vec::new(),
                read: self.read(step.reads).await?,
            });
        };
        // Reads on other nodes are taken first (still no later than the
        // tick), and kept in the intent so it reads back whole.
        let (local, foreign): (Vec<(usize, &String)>, Vec<(usize, &String)>) = step
            .reads
            .iter()
            .enumerate()
            .partition(|(_, key)| self.node_of(key) == node);
        let foreign_keys: Vec<String> = foreign.iter().map(|(_, k)| (*k).clone()).collect();
        let foreign_values = self.read(&foreign_keys).await?;
        let layout = ReadLayout {
            local: local.iter().map(|(p, _)| *p).collect(),
            foreign: foreign
                .iter()
                .map(|(p, _)| *p)
                .zip(foreign_values)
                .collect(),
        };
        let local_keys: Vec<String> = local.iter().map(|(_, k)| (*k).clone()).collect();
        let data = step.intent.map(|intent| layout.wrap(intent.data));
        let versions = self.nodes[node]
            .take(&Step {
                increments: step.increments,
                reads: &local_keys,
                intent: step
                    .intent
                    .zip(data.as_deref())
                    .map(|(intent, data)| IntentRecord {
                        id: intent.id,
                        scope: intent.scope,
                        data,
                    }),
            })
            .await?;
        Ok(Versions {
            read: layout.merge(&versions.read),
            ticked: versions.ticked,
        })
    }

    async fn intent(&self, id: &str) -> Result<Option<RecordedIntent>, BackendError> {
        for node in &self.nodes {
            if let Some(intent) = node.intent(id).await? {
                return Ok(Some(unwrap_intent(intent)));
            }
        }
        Ok(None)
    }

    async fn forget(&self, ids: &[String]) -> Result<(), BackendError> {
        try_join_all(self.nodes.iter().map(|node| node.forget(ids))).await?;
        Ok(())
    }

    async fn stale_intents(
        &self,
        scope: &str,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<RecordedIntent>, BackendError> {
        let mut all = Vec::new();
        for node in &self.nodes {
            all.extend(
                node.stale_intents(scope, age, limit)
                    .await?
                    .into_iter()
                    .map(unwrap_intent),
            );
        }
        all.truncate(limit);
        Ok(all)
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

    async fn seed(&self, targets: &[(String, u64)]) -> Result<usize, BackendError> {
        let mut groups: BTreeMap<usize, Vec<(String, u64)>> = BTreeMap::new();
        for (key, value) in targets {
            groups
                .entry(self.node_of(key))
                .or_default()
                .push((key.clone(), *value));
        }
        let set = try_join_all(
            groups
                .into_iter()
                .map(|(node, group)| async move { self.nodes[node].seed(&group).await }),
        )
        .await?;
        Ok(set.into_iter().sum())
    }

    /// Scans the node of the prefix's endpoint: the counters of one
    /// endpoint live on one node, so a prefix must name an endpoint.
    async fn scan(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<(Vec<(String, u64)>, u64), BackendError> {
        if !prefix.contains('/') {
            return Err(BackendError::new(
                "sharded",
                "scan",
                prefix,
                "a scan over several clock nodes must name one endpoint (`…app/model`)",
            ));
        }
        self.nodes[self.node_of(prefix)].scan(prefix, cursor).await
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

/// Where the reads of a step went: read on the ticking node (positions, in
/// order), or read before from other nodes (positions and values).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ReadLayout {
    local: Vec<usize>,
    foreign: Vec<(usize, u64)>,
}

/// Marks intent data wrapped with its [`ReadLayout`].
const WRAPPED: &[u8] = b"sharded-reads:";

impl ReadLayout {
    /// `data` prefixed with the layout, as the ticking node stores it.
    fn wrap(&self, data: &[u8]) -> Vec<u8> {
        let mut out = WRAPPED.to_vec();
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out.push(b'\n');
        out.extend_from_slice(data);
        out
    }

    /// The reads in the step's order, from the node's local values.
    fn merge(&self, local_values: &[u64]) -> Vec<u64> {
        let size = self.local.len() + self.foreign.len();
        let mut read = vec![0; size];
        for (position, value) in self.local.iter().zip(local_values) {
            if let Some(slot) = read.get_mut(*position) {
                *slot = *value;
            }
        }
        for (position, value) in &self.foreign {
            if let Some(slot) = read.get_mut(*position) {
                *slot = *value;
            }
        }
        read
    }
}

/// An intent as the step recorded it: its own data, its reads in order.
fn unwrap_intent(mut intent: RecordedIntent) -> RecordedIntent {
    let Some(rest) = intent.data.strip_prefix(WRAPPED) else {
        return intent;
    };
    let Some(newline) = rest.iter().position(|b| *b == b'\n') else {
        return intent;
    };
    let Ok(layout) = serde_json::from_slice::<ReadLayout>(&rest[..newline]) else {
        return intent;
    };
    let data = rest[newline + 1..].to_vec();
    intent.versions.read = layout.merge(&intent.versions.read);
    intent.data = data;
    intent
}

#[cfg(test)]
mod tests {
    use super::{endpoint_of, unwrap_intent, ReadLayout};
    use crate::traits::{RecordedIntent, Versions};

    #[test]
    fn intents_read_back_whole() {
        let layout = ReadLayout {
            local: vec![1],
            foreign: vec![(0, 7), (2, 9)],
        };
        let recorded = RecordedIntent {
            id: "p".into(),
            data: layout.wrap(b"{\"plan\":1}"),
            versions: Versions {
                ticked: vec![3],
                read: vec![5],
            },
        };
        let intent = unwrap_intent(recorded);
        assert_eq!(intent.data, b"{\"plan\":1}");
        assert_eq!(intent.versions.read, vec![7, 5, 9]);
        assert_eq!(intent.versions.ticked, vec![3]);
    }

    #[test]
    fn keys_route_by_endpoint() {
        assert_eq!(endpoint_of("p:0:app/user#12"), "app/user");
        assert_eq!(endpoint_of("p:0:app/user"), "app/user");
        assert_eq!(endpoint_of("s:sub:app:0:app/user#3"), "app/user");
        assert_eq!(endpoint_of("s:sub:app:0:app/user@\"x:y#z/w\""), "app/user");
        assert_eq!(endpoint_of("no-endpoint#4"), "no-endpoint");
    }
}
