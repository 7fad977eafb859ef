//! Which subscribed model handles a received operation.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::model::SubscriberRegistration;
use crate::subscriber::SubscriberHandler;
use crate::wire::{Endpoint, EndpointPattern, Operation};

struct Route {
    pattern: EndpointPattern,
    as_name: &'static str,
    handler: &'static dyn SubscriberHandler,
}

/// Maps `(endpoint, types)` to the subscribed model that handles it.
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|r| {
                format!(
                    "{} {} -> {}",
                    r.pattern,
                    r.as_name,
                    r.handler.definition().model
                )
            }))
            .finish()
    }
}

impl Router {
    /// Builds and checks the routes of the given subscribers.
    pub fn new(registrations: &[&'static SubscriberRegistration]) -> Result<Self> {
        let mut routes: Vec<Route> = Vec::new();
        for reg in registrations {
            let def = (reg.definition)();
            let from = def.from_pattern();
            let pattern = EndpointPattern::parse(&from).map_err(|problem| Error::Definition {
                model: def.model.to_owned(),
                problem: format!("from: {problem}"),
            })?;
            if let Some(other) = routes
                .iter()
                .find(|r| r.pattern == pattern && r.as_name == def.as_name)
            {
                let other = other.handler.definition().model;
                if other == def.model {
                    continue;
                }
                return Err(Error::Definition {
                    model: def.model.to_owned(),
                    problem: format!(
                        "both {other} and {} stand for {} from {pattern}; give one of them another `as` or `from`",
                        def.model, def.as_name
                    ),
                });
            }
            routes.push(Route {
                pattern,
                as_name: def.as_name,
                handler: reg.handler,
            });
        }
        Ok(Self { routes })
    }

    /// The distinct endpoint patterns to bind.
    pub fn bindings(&self) -> Vec<EndpointPattern> {
        let set: BTreeSet<_> = self.routes.iter().map(|r| r.pattern.clone()).collect();
        set.into_iter().collect()
    }

    /// Whether any subscribed model listens to `endpoint`.
    pub fn listens_to(&self, endpoint: &str) -> bool {
        Endpoint::parse(endpoint).is_ok_and(|e| self.routes.iter().any(|r| r.pattern.matches(&e)))
    }

    /// The handler for an operation: the subscribed model standing for the most
    /// derived of its `types` (an unsubscribed subclass goes to its nearest
    /// subscribed ancestor); when no type matches, the root model (one without
    /// parent) bound to the endpoint, the most specific binding first; `None`
    /// when nothing is bound.
    pub fn route(&self, op: &Operation) -> Option<&'static dyn SubscriberHandler> {
        let endpoint = Endpoint::parse(&op.endpoint).ok()?;
        let bound = || self.routes.iter().filter(|r| r.pattern.matches(&endpoint));
        op.types
            .iter()
            .find_map(|ty| bound().find(|r| r.as_name == ty))
            .or_else(|| {
                bound()
                    .filter(|r| r.handler.definition().parent.is_none())
                    .max_by_key(|r| (r.pattern.app().is_some(), r.pattern.model().is_some()))
            })
            .map(|r| r.handler)
    }

    /// Names of the subscribed models that store records (not observers).
    pub fn stored_models(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes
            .iter()
            .map(|r| r.handler.definition())
            .filter(|d| !d.is_observer())
            .map(|d| d.model)
    }

    /// Whether no subscriber is routed.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
