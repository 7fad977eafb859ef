//! The first step of an initial sync: publishing where the counters of an
//! endpoint stand, so that a subscriber that joined since starts there.
//!
//! A subscriber that joins a running publisher never receives what was
//! published before its queue existed, so its counters would wait for
//! versions that never come. The sync republishes the state of every record;
//! the baseline, published just before, says up to which version each
//! counter is covered by it. A subscriber seeds a counter from it only when
//! it never applied anything there (see `subscriber::epochs`): it then holds
//! nothing that an operation it will not receive could have changed.

use serde_json::Value;

use super::plan::message;
use crate::error::{Error, Result};
use crate::model::PublisherDef;
use crate::runtime::Promiscuous;
use crate::wire::{Dependencies, Dependency, Operation, OperationKind};

/// Counters per baseline message.
const PAGE: usize = 1000;

impl Promiscuous {
    /// Publishes where the counters of `def`'s endpoint stand now, in pages
    /// of a thousand: run before the records of an initial sync (both
    /// [`sync_all`](Promiscuous::sync_all) and the SQL adapter's sync do).
    /// Returns how many counters it published.
    pub async fn publish_baseline(&self, def: &'static PublisherDef) -> Result<usize> {
        let rt = &self.inner;
        rt.ensure_open()?;
        let endpoint = def.endpoint(&rt.config.app);
        let endpoint_key = rt.clock_key(&endpoint);
        let prefix = rt.clock_key("");
        let endpoint_version = rt
            .clock
            .read(std::slice::from_ref(&endpoint_key))
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        let mut counters = Vec::new();
        let mut cursor = 0;
        loop {
            let (page, next) = rt.clock.scan(&format!("{endpoint_key}#"), cursor).await?;
            counters.extend(page.into_iter().filter_map(|(key, version)| {
                let key = key.strip_prefix(&prefix)?.to_owned();
                Some(Dependency::new(key, version))
            }));
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        counters.sort_by(|a, b| a.key.cmp(&b.key));
        counters.dedup_by(|a, b| a.key == b.key);
        if counters.is_empty() && endpoint_version == 0 {
            return Ok(0);
        }
        let types: Vec<String> = def.types().into_iter().map(str::to_owned).collect();
        let pages: Vec<&[Dependency]> = if counters.is_empty() {
            vec![&[]]
        } else {
            counters.chunks(PAGE).collect()
        };
        for (index, page) in pages.iter().enumerate() {
            let op = Operation {
                operation: OperationKind::Baseline,
                endpoint: endpoint.clone(),
                types: types.clone(),
                id: Value::Null,
                attributes: None,
                dependencies: Dependencies {
                    write: page.to_vec(),
                    read: Vec::new(),
                    endpoint: Some(Dependency::new(endpoint.clone(), endpoint_version)),
                },
                sync: true,
            };
            let id = format!("{}:baseline:{index}", rt.next_owner());
            let baseline = message(
                &rt.config.app,
                rt.config.generation,
                rt.clock.epoch(),
                &rt.config.host,
                &id,
                vec![op],
            );
            rt.send(std::slice::from_ref(&endpoint), &baseline)
                .await
                .map_err(|error| Error::Publisher {
                    model: def.model.to_owned(),
                    id: String::new(),
                    operation: "baseline",
                    source: Box::new(error),
                })?;
        }
        tracing::info!(app = %rt.config.app, endpoint, counters = counters.len(), "baseline of an initial sync published");
        Ok(counters.len())
    }
}
