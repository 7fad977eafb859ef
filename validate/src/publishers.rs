//! `validate::publishers`: the mocks file is up to date and every published
//! attribute can be produced.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use promiscuous_core::error::chain;
use promiscuous_core::model::{AttributeSource, PublisherDef, PublisherRegistration};
use promiscuous_core::Error;
use serde_json::Value;

use crate::diff::line_diff;
use crate::export::{mocks_app, mocks_source, published_definitions, write_file, ENV_WRITE_MOCKS};
use crate::report::{outcome, Problem, Report, ValidationError};

/// Checks a publisher app against its committed mocks file; see [`publishers`].
#[derive(Debug, Clone)]
pub struct Publishers {
    path: PathBuf,
    app: Option<String>,
    definitions: Option<Vec<&'static PublisherDef>>,
    rewrite: bool,
    unchecked: Vec<String>,
}

/// Whether `PROMISCUOUS_WRITE_MOCKS` asks for the mocks file to be rewritten.
fn rewrite_requested() -> bool {
    std::env::var(ENV_WRITE_MOCKS)
        .map(|value| matches!(value.trim(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

impl Publishers {
    /// Checks every publisher of this binary (mocks left out) against the
    /// mocks file at `path`, for the app named in that file.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            app: None,
            definitions: None,
            rewrite: rewrite_requested(),
            unchecked: Vec::new(),
        }
    }

    /// The publisher app, instead of the one named in the file (needed when
    /// the file does not exist yet).
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// Checks these publishers (and exports them, with their ancestors and
    /// embedded models) instead of every publisher of the binary.
    pub fn definitions(mut self, definitions: &[&'static PublisherDef]) -> Self {
        self.definitions = Some(definitions.to_vec());
        self
    }

    /// Rewrites the mocks file instead of comparing it (default: whether
    /// `PROMISCUOUS_WRITE_MOCKS` is `1`).
    pub fn rewrite(mut self, rewrite: bool) -> Self {
        self.rewrite = rewrite;
        self
    }

    /// Accepts these models unchecked when they cannot be instantiated
    /// (no `Default`): they are listed in [`Report::not_instantiated`]
    /// instead of failing the check.
    pub fn unchecked<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.unchecked.extend(models.into_iter().map(Into::into));
        self
    }

    /// Runs every check and reports all problems at once.
    pub fn check(&self) -> Result<Report, ValidationError> {
        let definitions = self
            .definitions
            .clone()
            .unwrap_or_else(published_definitions);
        let mut problems = Vec::new();
        let mut report = Report {
            subject: "publishers",
            ..Report::default()
        };
        if definitions.is_empty() {
            problems.push(Problem::NothingPublished);
            return outcome(problems, report);
        }
        self.check_file(&definitions, &mut problems, &mut report);
        for def in &definitions {
            check_inherited_embeds(def, &mut problems);
            check_sample(def, &self.unchecked, &mut problems, &mut report);
        }
        outcome(problems, report)
    }

    /// Compares (or rewrites) the mocks file.
    fn check_file(
        &self,
        definitions: &[&'static PublisherDef],
        problems: &mut Vec<Problem>,
        report: &mut Report,
    ) {
        let shown = self.path.display().to_string();
        let existing = std::fs::read_to_string(&self.path);
        let app = self
            .app
            .clone()
            .or_else(|| existing.as_ref().ok().and_then(|text| mocks_app(text)))
            .or_else(|| std::env::var(promiscuous_core::config::ENV_APP).ok())
            .or_else(|| app_of_endpoints(definitions));
        let existing = match (existing, &app) {
            (Ok(text), _) => Some(text),
            (Err(e), Some(_)) if self.rewrite && e.kind() == std::io::ErrorKind::NotFound => None,
            // Asked to write the file but with no app to write it for: say
            // that, not that the file is missing (which the rewrite would fix).
            (Err(e), None) if self.rewrite && e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(Problem::UnknownApp { path: shown });
                return;
            }
            (Err(e), _) => {
                problems.push(Problem::MocksUnreadable {
                    path: shown,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let Some(app) = app else {
            problems.push(Problem::UnknownApp { path: shown });
            return;
        };
        let export = mocks_source(&app, definitions);
        if self.rewrite {
            if existing.as_deref() == Some(export.as_str()) {
                report.notes.push(format!("{shown} is up to date"));
                return;
            }
            match write_file(&self.path, &export) {
                Ok(()) => report.notes.push(format!(
                    "rewrote {shown} ({ENV_WRITE_MOCKS} is set); commit it and run the subscribers' tests against it"
                )),
                Err(e) => problems.push(Problem::MocksUnwritable {
                    path: shown,
                    reason: e.to_string(),
                }),
            }
            return;
        }
        if let Some(existing) = existing {
            if existing != export {
                problems.push(Problem::MocksStale {
                    diff: line_diff(&existing, &export, &shown, "what this binary publishes now"),
                    path: shown,
                });
            }
        }
    }
}

/// The app named by the explicit endpoints (`to = "app/model"`) of the
/// publishers, when they all name the same one.
fn app_of_endpoints(definitions: &[&'static PublisherDef]) -> Option<String> {
    let mut apps = definitions
        .iter()
        .filter_map(|def| def.root().to)
        .filter_map(|to| to.split_once('/').map(|(app, _)| app));
    let first = apps.next()?;
    apps.all(|app| app == first).then(|| first.to_owned())
}

/// A subclass inheriting an embedded attribute must declare it again, or it
/// publishes the field through serde instead of as embedded documents.
fn check_inherited_embeds(def: &'static PublisherDef, problems: &mut Vec<Problem>) {
    let Some(parent) = def.parent.map(|parent| parent()) else {
        return;
    };
    for attr in parent.all_attributes() {
        let redeclared = def
            .attributes
            .iter()
            .any(|own| own.name == attr.name && own.source == AttributeSource::Embedded);
        if attr.source == AttributeSource::Embedded && !redeclared {
            let mut embedder = parent;
            while !embedder.attributes.iter().any(|a| a.name == attr.name) {
                match embedder.parent {
                    Some(up) => embedder = up(),
                    None => break,
                }
            }
            problems.push(Problem::InheritedEmbedded {
                model: def.model.to_owned(),
                attribute: attr.name.to_owned(),
                parent: embedder.model.to_owned(),
            });
        }
    }
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Whether `value` has JSON type `json_type` (`?`: or null; `any`: anything).
fn has_type(value: &Value, json_type: &str) -> bool {
    let (base, nullable) = match json_type.strip_suffix('?') {
        Some(base) => (base, true),
        None => (json_type, false),
    };
    match value {
        Value::Null => nullable || base == "any",
        Value::String(_) => matches!(base, "string" | "any"),
        Value::Bool(_) => matches!(base, "boolean" | "any"),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            matches!(base, "integer" | "number" | "any")
        }
        Value::Number(_) => matches!(base, "number" | "any"),
        Value::Array(_) => matches!(base, "array" | "any"),
        Value::Object(_) => matches!(base, "object" | "any"),
    }
}

/// The JSON type of a value, for messages.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Produces the published attributes of a default instance and checks them.
fn check_sample(
    def: &'static PublisherDef,
    unchecked: &[String],
    problems: &mut Vec<Problem>,
    report: &mut Report,
) {
    let model = def.model.to_owned();
    let Some(registration) = PublisherRegistration::of(def) else {
        report.notes.push(format!(
            "{model} is not registered in this binary, so it was not instantiated"
        ));
        return;
    };
    let sample = panic::catch_unwind(AssertUnwindSafe(registration.sample));
    let attributes = match sample {
        Err(payload) => {
            problems.push(Problem::ModelFails {
                model,
                reason: format!(
                    "it panicked: {} (a virtual attribute, or a Serialize impl, cannot handle a default instance; the panic message above shows where)",
                    panic_message(payload.as_ref())
                ),
            });
            return;
        }
        Ok(None) if unchecked.contains(&model) => {
            report.not_instantiated.push(model);
            return;
        }
        Ok(None) => {
            problems.push(Problem::NotInstantiated { model });
            return;
        }
        Ok(Some(Err(Error::Attribute {
            attribute, problem, ..
        }))) => {
            problems.push(Problem::AttributeFails {
                model,
                attribute,
                reason: problem,
            });
            return;
        }
        Ok(Some(Err(error))) => {
            problems.push(Problem::ModelFails {
                model,
                reason: chain(&error),
            });
            return;
        }
        Ok(Some(Ok(attributes))) => attributes,
    };
    report.checked.push(model.clone());
    for attr in def.all_attributes() {
        // Embedded attributes hold documents, whose shape the embedded model defines.
        if attr.source == AttributeSource::Embedded {
            continue;
        }
        if let Some(value) = attributes.get(attr.name) {
            if !has_type(value, attr.json_type) {
                problems.push(Problem::WrongType {
                    model: model.clone(),
                    attribute: attr.name.to_owned(),
                    declared: attr.json_type.to_owned(),
                    found: format!("{} ({value})", type_of(value)),
                });
            }
        }
    }
}

/// Validates the publishers of this binary against the mocks file at `path`.
///
/// Fails, listing every problem, when:
/// - the file is not what this binary publishes now ([`export_mocks`](crate::export_mocks)
///   for the app named in the file): the error shows a diff. With
///   `PROMISCUOUS_WRITE_MOCKS=1` the file is rewritten instead;
/// - a published attribute of a model implementing `Default`, subclasses
///   included, cannot be produced from `Model::default()` (a virtual
///   attribute that fails or panics, an inherited virtual attribute the
///   subclass lacks, a field renamed or skipped by serde), or produces
///   another JSON type than the one exported;
/// - a subclass inherits an embedded attribute without declaring it again.
///
/// A model that cannot be instantiated (no `Default`; a sea-orm entity's
/// `Model` is made from its `ActiveModel::default_values()`) fails the check
/// unless accepted with [`Publishers::unchecked`]. Use [`Publishers`] to name
/// the app, select publishers or accept unchecked models, or the
/// [`contract_tests!`](crate::contract_tests) macro for the whole test.
pub fn publishers(path: impl AsRef<Path>) -> Result<Report, ValidationError> {
    Publishers::new(path).check()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_types() {
        assert!(has_type(&json!("a"), "string"));
        assert!(!has_type(&json!(null), "string"));
        assert!(has_type(&json!(null), "string?"));
        assert!(has_type(&json!(1), "number"));
        assert!(!has_type(&json!(1.5), "integer"));
        assert!(has_type(&json!([1]), "array?"));
        assert!(has_type(&json!({}), "object"));
        assert!(has_type(&json!(null), "any"));
        assert!(!has_type(&json!("1"), "integer"));
    }
}
