//! `validate::subscribers`: every subscribed model, subclass and attribute is published.

use promiscuous_core::error::chain;
use promiscuous_core::model::{
    subscriber_registrations, PublisherDef, Subscribe, SubscriberDef, SubscriberRegistration,
};
use promiscuous_core::subscriber::Router;
use promiscuous_core::wire::{Dependencies, EndpointPattern, Operation, OperationKind};
use serde_json::Value;

use crate::report::{outcome, Problem, Report, ValidationError};
use crate::suggest::{distance, list, suggestion};

/// Checks subscribers against publishers' (mock) definitions; see [`subscribers`].
#[derive(Debug, Clone, Default)]
pub struct Subscribers {
    published: Vec<(String, &'static PublisherDef)>,
    selected: Option<Vec<&'static SubscriberDef>>,
}

/// One published type: where it goes and what it is.
#[derive(Debug, Clone)]
struct Published {
    endpoint: String,
    def: &'static PublisherDef,
}

impl Subscribers {
    /// No publisher yet; every subscriber of the binary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the definitions published by `app` (a mocks file's `definitions()` and `APP`).
    pub fn publisher(mut self, app: &str, definitions: &[&'static PublisherDef]) -> Self {
        self.published
            .extend(definitions.iter().map(|def| (app.to_owned(), *def)));
        self
    }

    /// Checks subscriber `M`; once called, only the selected subscribers are
    /// checked, as one app (like `ConfigBuilder::subscriber`).
    pub fn subscriber<M: Subscribe>(self) -> Self {
        self.definition(M::definition())
    }

    /// Checks this subscriber definition; see [`subscriber`](Self::subscriber).
    pub fn definition(mut self, definition: &'static SubscriberDef) -> Self {
        self.selected.get_or_insert_with(Vec::new).push(definition);
        self
    }

    /// Runs every check and reports all problems at once.
    pub fn check(&self) -> Result<Report, ValidationError> {
        let mut problems = Vec::new();
        let mut report = Report {
            subject: "subscribers",
            ..Report::default()
        };
        if self.published.is_empty() {
            problems.push(Problem::NoPublishers);
        }
        let registrations = self.registrations(&mut problems);
        if registrations.is_empty() && self.selected.is_none() {
            problems.push(Problem::NothingSubscribed);
        }
        let router = match Router::new(&registrations) {
            Ok(router) => Some(router),
            Err(error) => {
                problems.push(Problem::Unroutable {
                    reason: chain(&error),
                });
                None
            }
        };
        let published: Vec<Published> = self
            .published
            .iter()
            .map(|(app, def)| Published {
                endpoint: def.endpoint(app),
                def,
            })
            .collect();
        // Which subscriber the worker would hand each published type to.
        // Without a router, only the checks that do not need one are run.
        let routed: Option<Vec<(&Published, &'static SubscriberDef)>> = router.map(|router| {
            published
                .iter()
                .filter_map(|p| router.route(&operation(p)).map(|h| (p, h.definition())))
                .collect()
        });
        for reg in &registrations {
            let def = (reg.definition)();
            report.checked.push(def.model.to_owned());
            check_one(
                def,
                &published,
                routed.as_deref(),
                &mut problems,
                &mut report,
            );
        }
        outcome(problems, report)
    }

    /// The registrations to check: the selected ones, or all of the binary.
    fn registrations(&self, problems: &mut Vec<Problem>) -> Vec<&'static SubscriberRegistration> {
        let all = subscriber_registrations();
        let Some(selected) = &self.selected else {
            return all;
        };
        let mut regs: Vec<&'static SubscriberRegistration> = Vec::new();
        for def in selected {
            match all.iter().find(|r| std::ptr::eq((r.definition)(), *def)) {
                Some(reg) if !regs.iter().any(|r| std::ptr::eq(*r, *reg)) => regs.push(reg),
                Some(_) => {}
                None => problems.push(Problem::NotRegistered {
                    model: def.model.to_owned(),
                }),
            }
        }
        regs
    }
}

/// A create of a published type, as the router sees it.
fn operation(published: &Published) -> Operation {
    Operation {
        operation: OperationKind::Create,
        endpoint: published.endpoint.clone(),
        types: published
            .def
            .types()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        id: Value::Null,
        attributes: None,
        dependencies: Dependencies::default(),
        sync: false,
    }
}

/// `a/b` ↔ pattern distance: wildcard parts match anything.
fn pattern_distance(pattern: &str, endpoint: &str) -> usize {
    let (pa, pm) = pattern.split_once('/').unwrap_or((pattern, ""));
    let (ea, em) = endpoint.split_once('/').unwrap_or((endpoint, ""));
    let part = |p: &str, e: &str| if p == "*" { 0 } else { distance(p, e) };
    part(pa, ea) + part(pm, em)
}

/// Sorted, deduplicated names.
fn names<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = items.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn check_one(
    def: &'static SubscriberDef,
    published: &[Published],
    routed: Option<&[(&Published, &'static SubscriberDef)]>,
    problems: &mut Vec<Problem>,
    report: &mut Report,
) {
    let model = def.model.to_owned();
    let pattern_text = def.from_pattern();
    let Ok(pattern) = EndpointPattern::parse(&pattern_text) else {
        // The router reported it.
        return;
    };
    let here: Vec<&Published> = published
        .iter()
        .filter(|p| pattern.matches_str(&p.endpoint))
        .collect();
    if here.is_empty() {
        let endpoints = names(published.iter().map(|p| p.endpoint.as_str()));
        let best = endpoints
            .iter()
            .copied()
            .min_by_key(|e| pattern_distance(&pattern_text, e));
        let suggestion = match best {
            None => "no endpoint is published".to_owned(),
            Some(best) => format!(
                "did you mean `from = \"{best}\"`? (published endpoints: {})",
                list(&endpoints)
            ),
        };
        problems.push(Problem::EndpointNotPublished {
            model,
            pattern: pattern_text,
            suggestion,
        });
        return;
    }
    let types_here = names(here.iter().flat_map(|p| p.def.types()));
    let stands_for_published = here.iter().any(|p| p.def.types().contains(&def.as_name));
    if !stands_for_published {
        if def.parent.is_some() {
            problems.push(Problem::SubclassNotPublished {
                model,
                as_name: def.as_name.to_owned(),
                pattern: pattern_text,
                suggestion: suggestion(def.as_name, &types_here, "published types there", |t| {
                    format!("`as = \"{t}\"`")
                }),
            });
            return;
        }
        report.notes.push(format!(
            "{model} stands for {}, which is not a published type on {pattern_text}; it receives the types no other subscriber takes there",
            def.as_name
        ));
    }
    let Some(routed) = routed else {
        return;
    };
    let mine: Vec<&Published> = routed
        .iter()
        .filter(|(_, to)| std::ptr::eq(*to, def))
        .map(|(p, _)| *p)
        .collect();
    if mine.is_empty() {
        let mut taken_by: Vec<&str> = routed
            .iter()
            .filter(|(p, _)| pattern.matches_str(&p.endpoint))
            .map(|(_, to)| to.model)
            .collect();
        taken_by.sort_unstable();
        taken_by.dedup();
        if taken_by.is_empty() {
            taken_by.push("no subscriber");
        }
        problems.push(Problem::ReceivesNothing {
            model,
            pattern: pattern_text,
            taken_by: taken_by.join(", "),
        });
        return;
    }
    for attr in def.all_attributes() {
        let lacking: Vec<&Published> = mine
            .iter()
            .copied()
            .filter(|p| !p.def.all_attributes().iter().any(|a| a.name == attr.name))
            .collect();
        let Some(first) = lacking.first() else {
            continue;
        };
        let published_by = names(
            here.iter()
                .filter(|p| p.def.all_attributes().iter().any(|a| a.name == attr.name))
                .map(|p| p.def.model),
        );
        let available: Vec<&str> = first.def.all_attributes().iter().map(|a| a.name).collect();
        let hint = if published_by.is_empty() {
            suggestion(attr.name, &available, "published attributes", |a| {
                format!("`{a}`")
            })
        } else {
            format!(
                "only {} publish{} it: subscribe it on a subscriber of {} (with `parent = …`)",
                published_by.join(", "),
                if published_by.len() == 1 { "es" } else { "" },
                published_by.join(" or ")
            )
        };
        problems.push(Problem::AttributeNotPublished {
            model: model.clone(),
            attribute: attr.name.to_owned(),
            published: names(lacking.iter().map(|p| p.def.model)).join(", "),
            endpoint: names(lacking.iter().map(|p| p.endpoint.as_str())).join(", "),
            suggestion: hint,
        });
    }
}

/// Validates every subscriber of this binary against the definitions
/// published by `app` (a mocks file's `definitions()` and `APP`).
///
/// Fails, listing every problem (each names the subscriber, the attribute or
/// endpoint, and the closest published name), when:
/// - a subscriber's endpoint pattern (`from`, or `*/model` by default)
///   matches no published endpoint;
/// - a subscribed subclass (`parent = …`) stands for (`as`, or its name) a
///   type that is not published there;
/// - a subscribed attribute, inherited ones included, is not published by
///   every type the worker would hand to that subscriber (it routes each type
///   to the subscriber of its most derived subscribed type, else the root);
/// - a subscriber would receive nothing, or the subscribers cannot be routed together.
///
/// Observers are checked the same way. Use [`Subscribers`] for several
/// publisher apps or to select subscribers.
pub fn subscribers(
    definitions: &[&'static PublisherDef],
    app: &str,
) -> Result<Report, ValidationError> {
    Subscribers::new().publisher(app, definitions).check()
}

#[cfg(test)]
mod tests {
    use super::pattern_distance;

    #[test]
    fn wildcards_match_anything() {
        assert_eq!(pattern_distance("*/user", "crowdtap/user"), 0);
        assert_eq!(pattern_distance("crowdtap/usr", "crowdtap/user"), 1);
        assert_eq!(pattern_distance("*/*", "a/b"), 0);
    }
}
