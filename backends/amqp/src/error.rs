//! Turning lapin's errors into [`BackendError`]s that say whether a retry helps.

use lapin::ErrorKind;
use promiscuous_core::BackendError;

/// The backend name in errors and logs.
pub(crate) const BACKEND: &str = "amqp";

/// AMQP reply codes that a retry does not cure: access refused (403),
/// precondition failed (406, e.g. a queue declared with other arguments) and
/// not allowed (530, e.g. an unknown vhost).
const PERMANENT_CODES: [u16; 3] = [403, 406, 530];

/// The AMQP reply code carried by `error`, if RabbitMQ sent one.
pub(crate) fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// Whether `error` is RabbitMQ's 404 (no such queue or exchange).
pub(crate) fn is_not_found(error: &lapin::Error) -> bool {
    reply_code(error) == Some(404)
}

/// A [`BackendError`] for a failed lapin call: permanent for refusals that a
/// retry cannot cure, temporary for everything else (connection and channel
/// losses, timeouts). `context` is the message; the lapin error is the
/// source, not repeated in the message.
pub(crate) fn from_lapin(
    operation: &'static str,
    target: &str,
    context: &str,
    error: lapin::Error,
) -> BackendError {
    let permanent = reply_code(&error).is_some_and(|code| PERMANENT_CODES.contains(&code));
    let backend_error = BackendError::new(BACKEND, operation, target, context);
    let backend_error = if permanent {
        backend_error
    } else {
        backend_error.temporary()
    };
    backend_error.with_source(error)
}

/// A temporary [`BackendError`] without a source.
pub(crate) fn temporary(
    operation: &'static str,
    target: &str,
    message: impl Into<String>,
) -> BackendError {
    BackendError::new(BACKEND, operation, target, message).temporary()
}

/// A permanent [`BackendError`] without a source.
pub(crate) fn permanent(
    operation: &'static str,
    target: &str,
    message: impl Into<String>,
) -> BackendError {
    BackendError::new(BACKEND, operation, target, message)
}

/// The error for any call made after [`close`](promiscuous_core::traits::Broker::close).
pub(crate) fn closed(operation: &'static str, target: &str) -> BackendError {
    permanent(operation, target, "the broker is closed")
}
