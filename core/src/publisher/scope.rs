//! Causal scopes: which published records the current task read or wrote, so
//! that its next publish depends on them.
//!
//! Inside [`causal_scope`], every record read through
//! [`Promiscuous::find`](crate::Promiscuous::find), named with
//! [`Promiscuous::depends_on`](crate::Promiscuous::depends_on) or written by a
//! publish becomes a *read dependency* of the following publishes: a
//! subscriber applies them only after it applied everything written to those
//! records before. Outside a scope nothing is recorded.

use std::cell::RefCell;
use std::future::Future;

use serde_json::Value;

tokio::task_local! {
    static SCOPE: RefCell<Vec<(String, Value)>>;
}

/// Runs `future` in a fresh causal scope.
///
/// ```
/// # async fn demo() {
/// promiscuous_core::publisher::causal_scope(async {
///     // reads and writes of published models here depend on each other
/// })
/// .await;
/// # }
/// ```
pub async fn causal_scope<F: Future>(future: F) -> F::Output {
    SCOPE.scope(RefCell::new(Vec::new()), future).await
}

/// Whether the current task runs inside a causal scope.
pub fn in_causal_scope() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Records that the current task depends on record `id` of `endpoint`.
pub(crate) fn record(endpoint: &str, id: &Value) {
    if id.is_null() {
        return;
    }
    let _ = SCOPE.try_with(|scope| {
        let mut scope = scope.borrow_mut();
        if !scope.iter().any(|(e, i)| e == endpoint && i == id) {
            scope.push((endpoint.to_owned(), id.clone()));
        }
    });
}

/// The records the current task depends on (empty outside a scope).
pub(crate) fn recorded() -> Vec<(String, Value)> {
    SCOPE
        .try_with(|scope| scope.borrow().clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn records_only_inside_a_scope_and_once() {
        record("a/user", &json!(1));
        assert!(recorded().is_empty());
        assert!(!in_causal_scope());
        causal_scope(async {
            assert!(in_causal_scope());
            record("a/user", &json!(1));
            record("a/user", &json!(1));
            record("a/user", &Value::Null);
            record("a/post", &json!(1));
            assert_eq!(
                recorded(),
                vec![("a/user".into(), json!(1)), ("a/post".into(), json!(1))]
            );
        })
        .await;
        assert!(recorded().is_empty());
    }
}
