//! What a validation found: a [`Report`] when the contract holds, a
//! [`ValidationError`] listing every [`Problem`] when it does not.

use std::fmt;

/// What a validation checked, when it found no problem (and, inside a
/// [`ValidationError`], when it did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// What was validated: `publishers` or `subscribers`.
    pub subject: &'static str,
    /// The models checked.
    pub checked: Vec<String>,
    /// Published models accepted unchecked ([`Publishers::unchecked`](crate::Publishers::unchecked)):
    /// they could not be instantiated, so their attributes were not checked.
    pub not_instantiated: Vec<String>,
    /// Remarks that are not problems: a rewritten mocks file, a subscriber
    /// standing for a type that is not published but receiving its endpoint's root.
    pub notes: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let checked = if self.checked.is_empty() {
            "nothing".to_owned()
        } else {
            self.checked.join(", ")
        };
        write!(f, "validate::{} checked {checked}", self.subject)?;
        if !self.not_instantiated.is_empty() {
            write!(
                f,
                "\nnot instantiated, accepted unchecked (derive or implement Default to check them): {}",
                self.not_instantiated.join(", ")
            )?;
        }
        for note in &self.notes {
            write!(f, "\nnote: {note}")?;
        }
        Ok(())
    }
}

/// One way the contract between a publisher and its subscribers is broken.
///
/// Each message names the model (and attribute), what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The mocks file could not be read.
    #[error("cannot read the mocks file {path}: {reason}; generate it by running the publisher's tests with PROMISCUOUS_WRITE_MOCKS=1 (or call promiscuous::validate::write_mocks(app, path)) and commit it")]
    MocksUnreadable {
        /// The file.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The mocks file could not be written (`PROMISCUOUS_WRITE_MOCKS=1`).
    #[error("cannot write the mocks file {path}: {reason}")]
    MocksUnwritable {
        /// The file.
        path: String,
        /// Why it could not be written.
        reason: String,
    },
    /// The app of the mocks file is unknown.
    #[error("cannot tell which app the mocks file {path} is for: it has no `pub const APP` and the publishers' `to` endpoints do not name one app; pass the app with validate::Publishers::new(path).app(\"name\"), or set PROMISCUOUS_APP")]
    UnknownApp {
        /// The file.
        path: String,
    },
    /// The mocks file differs from what the binary publishes now.
    #[error("the mocks file {path} is out of date: it is not what this binary publishes now. If the change is intended, regenerate it (run the publisher's tests with PROMISCUOUS_WRITE_MOCKS=1), commit it, and run the subscribers' tests against it.\n{diff}")]
    MocksStale {
        /// The file.
        path: String,
        /// A unified diff from the file to the current export.
        diff: String,
    },
    /// A published attribute cannot be produced from a default instance.
    #[error("{model}.{attribute} cannot be produced from {model}::default(): {reason}")]
    AttributeFails {
        /// The published model.
        model: String,
        /// The attribute.
        attribute: String,
        /// What failed.
        reason: String,
    },
    /// A model's published attributes cannot be produced at all.
    #[error(
        "{model}: its published attributes cannot be produced from {model}::default(): {reason}"
    )]
    ModelFails {
        /// The published model.
        model: String,
        /// What failed.
        reason: String,
    },
    /// A published attribute does not have the JSON type the export declares.
    #[error("{model}.{attribute} is exported as {declared} but {model}::default() produces {found}: subscribers' mocks would send another type than the real publisher; change the field's type or its Serialize impl")]
    WrongType {
        /// The published model.
        model: String,
        /// The attribute.
        attribute: String,
        /// The JSON type guessed from the field's type.
        declared: String,
        /// The value produced, as JSON.
        found: String,
    },
    /// A subclass inherits an embedded attribute as a plain field.
    #[error("{model}.{attribute} is embedded by {parent}, but {model} inherits it as a plain field, which is published through serde instead of as embedded documents; mark the field #[publish(embeds)] on {model} too")]
    InheritedEmbedded {
        /// The published subclass.
        model: String,
        /// The attribute.
        attribute: String,
        /// The ancestor that embeds it.
        parent: String,
    },
    /// A published model could not be instantiated, so its attributes were not checked.
    #[error("{model} was not instantiated, so its published attributes were not checked: derive or implement Default on it (a sea-orm entity's Model is made from its ActiveModel::default_values(), which needs a default for every column), or accept it unchecked with validate::Publishers::new(path).unchecked([\"{model}\"])")]
    NotInstantiated {
        /// The published model.
        model: String,
    },
    /// No publisher is linked into the binary.
    #[error("no publisher is linked into this binary, so there is nothing to export or check: reference the publisher app's crate from the test (`use my_app as _;`), or the linker leaves its definitions out")]
    NothingPublished,
    /// No subscriber is linked into the binary.
    #[error("no subscriber is linked into this binary, so there is nothing to check: reference the subscriber app's crate from the test (`use my_app as _;`), or the linker leaves its definitions out")]
    NothingSubscribed,
    /// No publisher definitions were given to check subscribers against.
    #[error("no publisher definitions to check the subscribers against: pass the mocks' definitions, e.g. validate::subscribers(&crowdtap::definitions(), crowdtap::APP)")]
    NoPublishers,
    /// A subscriber given to the validator is not registered in the binary.
    #[error("subscriber {model} is not registered in this binary; derive Subscribe on it (or list it with define!)")]
    NotRegistered {
        /// The subscribed model.
        model: String,
    },
    /// The subscribers cannot be routed together.
    #[error("the subscribers cannot work together: {reason}")]
    Unroutable {
        /// The router's error.
        reason: String,
    },
    /// A subscriber's endpoint pattern matches no published endpoint.
    #[error("subscriber {model} listens to {pattern}, where nothing is published; {suggestion}")]
    EndpointNotPublished {
        /// The subscribed model.
        model: String,
        /// Its endpoint pattern (`from`).
        pattern: String,
        /// The closest published endpoint, and all of them.
        suggestion: String,
    },
    /// A subscribed subclass stands for a type that is not published.
    #[error("subscribed subclass {model} stands for {as_name}, which is not a published type on {pattern}; {suggestion}")]
    SubclassNotPublished {
        /// The subscribed model.
        model: String,
        /// The published type it stands for (`as`).
        as_name: String,
        /// Its endpoint pattern.
        pattern: String,
        /// The closest published type, and all of them.
        suggestion: String,
    },
    /// A subscriber receives nothing: other subscribers take every type.
    #[error("subscriber {model} listens to {pattern} but receives nothing: every type published there goes to {taken_by}; give {model} an `as` naming a published type, or a `parent`")]
    ReceivesNothing {
        /// The subscribed model.
        model: String,
        /// Its endpoint pattern.
        pattern: String,
        /// The subscribers receiving the types instead.
        taken_by: String,
    },
    /// A subscribed attribute is not published by a type the subscriber receives.
    #[error("subscriber {model} subscribes `{attribute}`, which is not published by {published} on {endpoint}; {suggestion}")]
    AttributeNotPublished {
        /// The subscribed model.
        model: String,
        /// The attribute.
        attribute: String,
        /// The published types it receives that lack the attribute.
        published: String,
        /// The endpoint they are published to.
        endpoint: String,
        /// The closest published attribute, or where it is published.
        suggestion: String,
    },
}

impl Problem {
    /// The model the problem is about, if it is about one.
    pub fn model(&self) -> Option<&str> {
        match self {
            Problem::AttributeFails { model, .. }
            | Problem::ModelFails { model, .. }
            | Problem::WrongType { model, .. }
            | Problem::InheritedEmbedded { model, .. }
            | Problem::NotInstantiated { model }
            | Problem::NotRegistered { model }
            | Problem::EndpointNotPublished { model, .. }
            | Problem::SubclassNotPublished { model, .. }
            | Problem::ReceivesNothing { model, .. }
            | Problem::AttributeNotPublished { model, .. } => Some(model),
            _ => None,
        }
    }
}

/// The contract is broken: every problem found, and what was checked.
///
/// Its `Debug` output is its `Display` output, so `validate::publishers(path).unwrap()`
/// in a test prints a readable list.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(self))]
pub struct ValidationError {
    /// Every problem, in a stable order.
    pub problems: Vec<Problem>,
    /// What was checked.
    pub report: Report,
}

fn render(error: &ValidationError) -> String {
    let count = error.problems.len();
    let mut text = format!(
        "validate::{} found {count} problem{}:",
        error.report.subject,
        if count == 1 { "" } else { "s" }
    );
    for (index, problem) in error.problems.iter().enumerate() {
        let body = problem.to_string().replace('\n', "\n   ");
        text.push_str(&format!("\n{}. {body}", index + 1));
    }
    text.push_str(&format!("\n({})", error.report));
    text
}

impl fmt::Debug for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(self))
    }
}

/// `Ok(report)` when there is no problem, the error otherwise.
pub(crate) fn outcome(problems: Vec<Problem>, report: Report) -> Result<Report, ValidationError> {
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(ValidationError { problems, report })
    }
}
