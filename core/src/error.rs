//! The error type of the core crate and the context every backend error carries.

use std::fmt;
use std::time::Duration;

/// A boxed error from a backend, a callback or user code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias using the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether trying the same call again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The failure is transient (connection lost, timeout): retrying can help.
    Temporary,
    /// The failure will happen again with the same input (a value too long
    /// for its column, a malformed record): retrying cannot help.
    Permanent,
    /// Not known: retrying may help or not (a subscriber retries such a
    /// message up to `max_attempts` times).
    Unknown,
}

/// An error reported by a backend (broker, lock, clock or storage).
///
/// It names the backend, the call that failed and the target (URL, queue, key),
/// and says whether a retry may help, so the retry logic never matches strings.
///
/// Its `Display` is the context: `{backend} {operation} failed on {target}`,
/// then `: {message}` when the message is not empty. The underlying error is
/// not repeated there: it is [`source`](std::error::Error::source), and
/// [`chain`] shows both.
#[derive(Debug, thiserror::Error)]
#[error("{backend} {operation} failed on {target}{}", colon_then(message))]
pub struct BackendError {
    /// Name of the backend, e.g. `memory`, `amqp`, `redis`, `sea-orm`.
    pub backend: &'static str,
    /// The call that failed, e.g. `publish`, `tick`, `insert`.
    pub operation: &'static str,
    /// What the call was aimed at: a URL (without password), a queue, a key, a model.
    pub target: String,
    /// What went wrong, in words, without the text of the source (may be
    /// empty when the source says it all).
    pub message: String,
    /// Whether retrying may help.
    pub retry: Retry,
    /// The backend lost the state it kept (a Redis restarted without
    /// persistence): versions can no longer be trusted until the generation is bumped.
    pub state_lost: bool,
    /// The underlying error, when there is one.
    #[source]
    pub source: Option<BoxError>,
}

/// `prefix` then `text`, or nothing for an empty text.
fn prefixed(prefix: &str, text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("{prefix}{text}")
    }
}

/// `: attribute {a} is {v}`, or nothing when the attribute is not known.
fn attribute_and_value(attribute: &str, value: &str) -> String {
    match (attribute.is_empty(), value.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(": attribute `{attribute}`"),
        (false, false) => format!(": attribute `{attribute}` is {value}"),
    }
}

/// `: text`, or nothing for an empty text.
fn colon_then(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

impl BackendError {
    /// A new error without a source, neither temporary nor permanent (see
    /// [`temporary`](Self::temporary), [`permanent`](Self::permanent)).
    pub fn new(
        backend: &'static str,
        operation: &'static str,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            backend,
            operation,
            target: target.into(),
            message: message.into(),
            retry: Retry::Unknown,
            state_lost: false,
            source: None,
        }
    }

    /// Marks the error as a loss of the backend's state (permanent).
    pub fn state_lost(mut self) -> Self {
        self.state_lost = true;
        self.retry = Retry::Permanent;
        self
    }

    /// Whether the backend lost its state.
    pub fn is_state_lost(&self) -> bool {
        self.state_lost
    }

    /// Marks the error as temporary (retrying may help).
    pub fn temporary(mut self) -> Self {
        self.retry = Retry::Temporary;
        self
    }

    /// Marks the error as permanent: the same input fails the same way.
    pub fn permanent(mut self) -> Self {
        self.retry = Retry::Permanent;
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether retrying the call may succeed.
    pub fn is_temporary(&self) -> bool {
        self.retry == Retry::Temporary
    }

    /// Whether retrying the call with the same input cannot succeed.
    pub fn is_permanent(&self) -> bool {
        self.retry == Retry::Permanent
    }
}

/// Every error the core can report. The variants mirror the kinds users know
/// from the Ruby gem (Connection, Publisher, Subscriber, Recover,
/// LockUnavailable) and add the ones a typed API needs.
///
/// A variant's `Display` says what was being done; the error that caused it
/// is its [`source`](std::error::Error::source), not repeated in the message.
/// Show an error with [`chain`] to see both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message says what to change.
    #[error("invalid configuration: {field}: {problem}")]
    Config {
        /// The builder method or environment variable at fault.
        field: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A definition (publisher or subscriber) is inconsistent.
    #[error("invalid definition of {model}: {problem}")]
    Definition {
        /// The model whose definition is wrong.
        model: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A connection to a backend was lost or could not be made.
    ///
    /// Shown as the backend error it holds (which names the backend, the call
    /// and the URL); its source is that error's source.
    #[error(transparent)]
    Connection(BackendError),
    /// A backend call failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Publishing an operation failed; the operation did not reach the broker.
    #[error("failed to publish {operation} of {model} id {id}")]
    Publisher {
        /// The published model.
        model: String,
        /// The id of the record, as JSON.
        id: String,
        /// `create`, `update`, `destroy`.
        operation: &'static str,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// The database write of a published model failed; nothing was published
    /// but a `noop` that lets subscribers move on.
    #[error("the database write of {model} id {id} failed")]
    Write {
        /// The model.
        model: String,
        /// The record id, as JSON.
        id: String,
        /// The database's error.
        #[source]
        source: BoxError,
    },
    /// A write would touch several records at once, which cannot be published in order.
    #[error("refused to {operation} {count} records of {model} at once: published models are written one record at a time so each operation can be ordered; {hint}")]
    MultiRecordWrite {
        /// The model.
        model: String,
        /// `update` or `destroy`.
        operation: &'static str,
        /// How many records matched.
        count: usize,
        /// What to do instead.
        hint: String,
    },
    /// A lock could not be taken in time.
    #[error("lock on {key} unavailable after {waited:?}: another writer holds it; retry later or raise lock_timeout")]
    LockUnavailable {
        /// The lock key (`app/model/id`).
        key: String,
        /// How long we waited.
        waited: Duration,
    },
    /// Processing a received message failed.
    #[error(
        "failed to process {operation} of {model} id {id} from {endpoint}{}",
        prefixed(" with ", attributes)
    )]
    Subscriber {
        /// The subscriber model (or the received type when none matched).
        model: String,
        /// The id of the record, as JSON.
        id: String,
        /// `create`, `update`, `destroy`.
        operation: &'static str,
        /// The endpoint the message came from.
        endpoint: String,
        /// The received attributes, cut short (`name = "…", email = "…"`),
        /// when the failure may be due to one of them (empty otherwise).
        attributes: Box<str>,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// A received message is malformed or cannot be understood.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    /// Missing operations were skipped by an operator
    /// ([`Promiscuous::skip_missing`](crate::Promiscuous::skip_missing)):
    /// whatever they carried is lost for this subscriber.
    #[error("skipped missing operations: counter {key} was at {applied} and was raised to {needed} by an operator; their changes are lost for this subscriber, run an initial sync of {endpoint} if they mattered")]
    Recover {
        /// The counter key that was stuck.
        key: String,
        /// The version the subscriber had applied.
        applied: u64,
        /// The version it was raised to.
        needed: u64,
        /// How long the subscriber had waited (zero when unknown).
        waited: Duration,
        /// The endpoint the counter belongs to.
        endpoint: String,
    },
    /// A record could not be converted to or from the model.
    #[error(
        "cannot convert {model}{} {direction}{}",
        prefixed(" ", id),
        attribute_and_value(attribute, value)
    )]
    Conversion {
        /// The model.
        model: String,
        /// The record's id as JSON, when known (empty otherwise).
        id: String,
        /// `from the stored record`, `to a record`, `from the received attributes`.
        direction: &'static str,
        /// The path of the attribute that failed (`name`, `address.city`),
        /// when known (empty otherwise).
        attribute: Box<str>,
        /// An excerpt of that attribute's value as JSON (empty when unknown).
        value: Box<str>,
        /// The serde error: what was expected.
        #[source]
        source: serde_json::Error,
    },
    /// A published attribute could not be produced.
    #[error("cannot produce published attribute {attribute} of {model}: {problem}")]
    Attribute {
        /// The model.
        model: String,
        /// The attribute.
        attribute: String,
        /// What is wrong.
        problem: String,
    },
    /// A publisher took over a lock that its previous owner let expire: that
    /// owner died or stalled in the middle of a publication, which is now
    /// finished by recovery (see [`Error::PublicationRecovered`]).
    #[error("took over the lock on {key} that {owner} let expire (it was doing: {recovery}); its publication is finished by recovery")]
    LockExpired {
        /// The lock key (`app/model/id`).
        key: String,
        /// The owner that let it expire.
        owner: String,
        /// The recovery data it attached, as text.
        recovery: String,
    },
    /// A publication whose publisher stopped before its message was out was
    /// finished by another process: its message (or a `noop`, when its
    /// write never happened) was published with the versions it took.
    #[error(
        "finished publication {publication} of {app}, left by a publisher that stopped: {outcome}"
    )]
    PublicationRecovered {
        /// The publication's id.
        publication: String,
        /// The publishing app.
        app: String,
        /// What was published, in words.
        outcome: String,
    },
    /// A write was refused because recovery settled its publication first:
    /// its locks had expired (the process stalled longer than `lock_ttl`).
    #[error("the write of {model} id {id} was fenced off: its lock expired and recovery settled publication {publication} first; nothing was written, subscribers were told; retry the write")]
    Fenced {
        /// The model.
        model: String,
        /// The record id, as JSON.
        id: String,
        /// The publication that was settled.
        publication: String,
    },
    /// An operation the subscriber needs has not arrived for a long time.
    /// The subscriber keeps waiting (it never skips an operation that may
    /// still come); an operator can skip it (`Promiscuous::skip_missing`)
    /// after checking that it is lost for good.
    #[error("waiting for a missing operation: counter {key} is at {applied}, the next message needs {needed}; waited {waited:?} (message of {endpoint}); it is waited for until it arrives: check the publisher's recovery worker and outbox relay, or skip it as an operator")]
    Stalled {
        /// The counter key that is stuck.
        key: String,
        /// The version the subscriber applied.
        applied: u64,
        /// The version the waiting operation needs.
        needed: u64,
        /// How long it has waited so far.
        waited: Duration,
        /// The endpoint of the waiting message.
        endpoint: String,
    },
    /// A message from an older generation of the publisher's version counters
    /// was dropped: its versions cannot be ordered against the current ones.
    #[error("dropped a message of {app} from generation {generation}: this subscriber is at generation {current}; run an initial sync of {app} if its last operations are missing")]
    StaleGeneration {
        /// The publishing app.
        app: String,
        /// The message's generation.
        generation: u64,
        /// The subscriber's configured generation.
        current: u64,
    },
    /// A publisher's clock started a new epoch: it lost its state (Redis
    /// restarted without persistence, or flushed) and its versions start
    /// again. Reported once per subscriber process and epoch.
    #[error("the clock of {app} (generation {generation}) started a new epoch ({previous} -> {epoch}): it lost its state (Redis restarted without persistence, or flushed?); its versions start again in the new epoch, messages of the old one still queued are dead-lettered: run an initial sync of {app} so that nothing written before the loss is missing")]
    EpochChanged {
        /// The publishing app.
        app: String,
        /// Its generation.
        generation: u64,
        /// The epoch known before.
        previous: u64,
        /// The new epoch.
        epoch: u64,
    },
    /// A message of a clock epoch that a later one replaced was
    /// dead-lettered: its versions cannot be ordered against the new ones.
    #[error("dead-lettered a message of {app} (generation {generation}) from clock epoch {epoch}: that clock has since lost its state and started epoch {latest}, and versions of two epochs cannot be ordered; run an initial sync of {app}, then purge the dead letter")]
    SupersededEpoch {
        /// The publishing app.
        app: String,
        /// Its generation.
        generation: u64,
        /// The message's epoch.
        epoch: u64,
        /// The later epoch.
        latest: u64,
    },
    /// A subscriber worker stopped by itself: it consumes nothing any more.
    #[error("the subscriber worker of {app} stopped: {reason}")]
    WorkerStopped {
        /// The subscriber app.
        app: String,
        /// Why.
        reason: String,
    },
    /// Publishing several writes as one message failed.
    #[error("failed to publish a transaction of {} writes ({})", writes.len(), writes.join(", "))]
    Transaction {
        /// Each write, as `create User 1`.
        writes: Vec<String>,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// A publish was asked for with no write to publish.
    #[error("nothing to publish: {operation} was given no write")]
    NothingToPublish {
        /// The call that was given nothing.
        operation: &'static str,
    },
    /// The process has been shut down.
    #[error("promiscuous is shut down: {0}")]
    Shutdown(&'static str),
}

impl Error {
    /// A short name of the kind, as used in logs and metrics.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. } | Error::Definition { .. } => ErrorKind::Config,
            Error::Connection(_) => ErrorKind::Connection,
            Error::Backend(e) if e.is_temporary() => ErrorKind::Connection,
            Error::Backend(_) => ErrorKind::Backend,
            Error::Publisher { .. }
            | Error::Transaction { .. }
            | Error::Write { .. }
            | Error::MultiRecordWrite { .. }
            | Error::NothingToPublish { .. }
            | Error::Fenced { .. }
            | Error::Attribute { .. } => ErrorKind::Publisher,
            Error::LockUnavailable { .. } => ErrorKind::LockUnavailable,
            Error::Subscriber { .. } | Error::Wire(_) | Error::Conversion { .. } => {
                ErrorKind::Subscriber
            }
            Error::Recover { .. }
            | Error::Stalled { .. }
            | Error::LockExpired { .. }
            | Error::PublicationRecovered { .. }
            | Error::StaleGeneration { .. }
            | Error::EpochChanged { .. }
            | Error::SupersededEpoch { .. } => ErrorKind::Recover,
            Error::Shutdown(_) => ErrorKind::Shutdown,
            Error::WorkerStopped { .. } => ErrorKind::Subscriber,
        }
    }

    /// Whether retrying can never help: the same input fails the same way
    /// (a malformed message, a message of a replaced clock epoch). A
    /// subscriber dead-letters such a message at once; errors neither
    /// temporary nor permanent (a callback's, say) are retried up to
    /// `max_attempts` times.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Wire(_) | Error::SupersededEpoch { .. } | Error::Conversion { .. } => true,
            Error::Backend(e) => e.is_permanent(),
            Error::Write { source, .. } | Error::Subscriber { source, .. } => {
                boxed_is_permanent(source.as_ref())
            }
            _ => false,
        }
    }

    /// Whether retrying may help.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Connection(_) | Error::LockUnavailable { .. } => true,
            Error::Backend(e) => e.is_temporary(),
            Error::Publisher { source, .. } | Error::Transaction { source, .. } => {
                source.is_temporary()
            }
            Error::Write { source, .. } | Error::Subscriber { source, .. } => {
                boxed_is_temporary(source.as_ref())
            }
            _ => false,
        }
    }

    /// Whether a backend lost its state (see [`BackendError::state_lost`]):
    /// the instance is unhealthy until restarted with a bumped generation.
    pub fn is_state_lost(&self) -> bool {
        match self {
            Error::Connection(e) | Error::Backend(e) => e.is_state_lost(),
            Error::Publisher { source, .. } | Error::Transaction { source, .. } => {
                source.is_state_lost()
            }
            _ => false,
        }
    }

    pub(crate) fn config(field: &'static str, problem: impl Into<String>) -> Self {
        Error::Config {
            field,
            problem: problem.into(),
        }
    }
}

/// The messages of `error` and of each of its sources, joined with `": "`:
/// how to show an error to a person (logs, reports, test failures).
///
/// An error's `Display` gives its context only and its source gives the
/// cause, so `error.to_string()` alone leaves the cause out. Empty messages
/// are skipped, and so is a source's message that the text so far already
/// ends with (an error of another crate that prints its source itself).
///
/// ```
/// use promiscuous_core::error::{chain, BackendError};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let error = BackendError::new("amqp", "connect", "amqp://h", "cannot connect").with_source(io);
/// assert_eq!(error.to_string(), "amqp connect failed on amqp://h: cannot connect");
/// assert_eq!(chain(&error), "amqp connect failed on amqp://h: cannot connect: refused");
/// ```
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let message = error.to_string();
        if !message.is_empty() && !text.ends_with(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
        next = error.source();
    }
    text
}

/// Whether a boxed source (a backend's or a nested core error) says retrying may help.
fn boxed_is_temporary(source: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    if let Some(backend) = source.downcast_ref::<BackendError>() {
        return backend.is_temporary();
    }
    source
        .downcast_ref::<Error>()
        .is_some_and(Error::is_temporary)
}

fn boxed_is_permanent(source: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    if let Some(backend) = source.downcast_ref::<BackendError>() {
        return backend.is_permanent();
    }
    source
        .downcast_ref::<Error>()
        .is_some_and(Error::is_permanent)
}

/// The kinds of errors, for the error notifier and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Configuration or definition errors.
    Config,
    /// A connection was lost or refused.
    Connection,
    /// A backend refused a call.
    Backend,
    /// Publishing failed.
    Publisher,
    /// A lock could not be taken.
    LockUnavailable,
    /// Processing a message failed.
    Subscriber,
    /// A missing operation was skipped.
    Recover,
    /// The process was shut down.
    Shutdown,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::Config => "config",
            ErrorKind::Connection => "connection",
            ErrorKind::Backend => "backend",
            ErrorKind::Publisher => "publisher",
            ErrorKind::LockUnavailable => "lock_unavailable",
            ErrorKind::Subscriber => "subscriber",
            ErrorKind::Recover => "recover",
            ErrorKind::Shutdown => "shutdown",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(text: &str) -> std::io::Error {
        std::io::Error::other(text.to_owned())
    }

    #[test]
    fn backend_errors_show_their_source_once() {
        let bare = BackendError::new("redis", "tick", "redis://h/", "");
        assert_eq!(bare.to_string(), "redis tick failed on redis://h/");
        let error = BackendError::new("redis", "tick", "redis://h/", "").with_source(io("refused"));
        assert_eq!(error.to_string(), "redis tick failed on redis://h/");
        assert_eq!(chain(&error), "redis tick failed on redis://h/: refused");
        let error = BackendError::new(
            "amqp",
            "publish",
            "amqp://h",
            "the message could not be sent",
        )
        .with_source(io("channel closed"));
        assert_eq!(
            chain(&error),
            "amqp publish failed on amqp://h: the message could not be sent: channel closed"
        );
    }

    #[test]
    fn wrapping_errors_keep_the_cause_in_the_source() {
        let backend = BackendError::new("amqp", "publish", "amqp://h", "not confirmed")
            .with_source(io("lost"));
        let error = Error::Publisher {
            model: "User".into(),
            id: "1".into(),
            operation: "create",
            source: Box::new(Error::Backend(backend)),
        };
        assert_eq!(error.to_string(), "failed to publish create of User id 1");
        assert_eq!(
            chain(&error),
            "failed to publish create of User id 1: amqp publish failed on amqp://h: not confirmed: lost"
        );

        let error = Error::Connection(
            BackendError::new("redis", "connect", "redis://h/", "down").with_source(io("refused")),
        );
        assert_eq!(
            error.to_string(),
            "redis connect failed on redis://h/: down"
        );
        assert_eq!(
            chain(&error),
            "redis connect failed on redis://h/: down: refused"
        );

        let error = Error::Write {
            model: "User".into(),
            id: "1".into(),
            source: io("disk full").into(),
        };
        assert_eq!(
            chain(&error),
            "the database write of User id 1 failed: disk full"
        );
    }

    #[test]
    fn chain_shows_once_a_source_its_error_prints() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {source}")]
        struct Loud {
            source: std::io::Error,
        }
        let error = Loud {
            source: io("inner"),
        };
        assert_eq!(chain(&error), "outer: inner");

        let error = Error::Subscriber {
            model: "User".into(),
            id: "1".into(),
            operation: "update",
            endpoint: "app/user".into(),
            attributes: Box::default(),
            source: "no such column".into(),
        };
        assert_eq!(
            chain(&error),
            "failed to process update of User id 1 from app/user: no such column"
        );
        let error = Error::Subscriber {
            model: "User".into(),
            id: "1".into(),
            operation: "update",
            endpoint: "app/user".into(),
            attributes: "name = \"Ada\"".into(),
            source: "too long".into(),
        };
        assert_eq!(
            chain(&error),
            "failed to process update of User id 1 from app/user with name = \"Ada\": too long"
        );
    }

    #[test]
    fn chain_skips_empty_messages() {
        #[derive(Debug, thiserror::Error)]
        #[error("")]
        struct Silent(#[source] std::io::Error);
        assert_eq!(chain(&Silent(io("inner"))), "inner");
    }
}
