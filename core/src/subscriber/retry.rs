//! Retrying messages whose processing failed: with exponential backoff, up
//! to `max_attempts`, then to the dead-letter queue; failures of a backend
//! that may come back never use up the attempts.

use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::traits::Disposition;

/// Longest delay between two attempts at a failing message.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The delay before the next attempt at a message that failed `attempt`
/// times before: `retry_backoff`, doubled per attempt, at most 5 minutes.
pub(crate) fn retry_delay(config: &Config, attempt: u32) -> Duration {
    crate::backoff::exponential(config.retry_backoff, MAX_RETRY_DELAY)
        .nth(usize::try_from(attempt.min(30)).unwrap_or(30))
        .unwrap_or(MAX_RETRY_DELAY)
}

/// Whether a failed message is retried rather than dead-lettered: failures
/// of a backend that may come back (a clock or database outage) never use
/// up the attempts, and permanent ones (see [`Error::is_permanent`]) get
/// none.
pub(crate) fn will_retry(config: &Config, attempt: u32, error: &Error) -> bool {
    error.is_temporary() || (!error.is_permanent() && attempt + 1 < config.max_attempts)
}

/// What to do with a delivery whose processing failed with `error` on
/// attempt `attempt` (0 for the first delivery).
pub(crate) fn disposition(config: &Config, attempt: u32, error: &Error) -> Disposition {
    if will_retry(config, attempt, error) {
        Disposition::Retry {
            delay: retry_delay(config, attempt),
        }
    } else if error.is_permanent() {
        Disposition::DeadLetter {
            reason: crate::error::chain(error),
        }
    } else {
        Disposition::DeadLetter {
            reason: format!(
                "failed {} times, last: {}",
                attempt + 1,
                crate::error::chain(error)
            ),
        }
    }
}
