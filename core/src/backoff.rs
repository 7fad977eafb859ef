//! The one backoff policy of every crate: pauses between attempts that start
//! at a first pause and double up to a cap.
//!
//! Loops that retry (reconnecting to a broker, resubscribing to a channel)
//! draw their pauses from [`exponential`] and sleep on each inside their own
//! `select!`, so a stop signal still interrupts the wait:
//!
//! ```
//! use std::time::Duration;
//!
//! let mut pauses =
//!     promiscuous_core::backoff::exponential(Duration::from_secs(2), Duration::from_secs(30));
//! let pause = pauses.next().unwrap_or(Duration::from_secs(30));
//! assert_eq!(pause, Duration::from_secs(2));
//! // tokio::select! {
//! //     _ = tokio::time::sleep(pause) => { /* try again */ }
//! //     _ = &mut stopped => return,
//! // }
//! ```
//!
//! Start a new iterator to go back to the first pause (after a success).

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The pauses between attempts: `first`, then each one twice the one before,
/// never more than `max` (`first` is lowered to `max` when it is larger). The
/// iterator never ends.
///
/// There is no jitter: the pauses are exactly `first`, `2 × first`,
/// `4 × first`… so the documented timings hold (jitter spreads the retries of
/// many clients of one server; each of ours has one connection to retry).
/// The pauses come from [`backon::ExponentialBuilder`], which computes them
/// in `f32` seconds; they are rounded to the microsecond so `0.1 s` doubles
/// to `0.2 s`, not `0.200000003 s`.
pub fn exponential(
    first: Duration,
    max: Duration,
) -> impl Iterator<Item = Duration> + Send + Sync + fmt::Debug + 'static {
    ExponentialBuilder::new()
        .with_factor(2.0)
        .with_min_delay(first.min(max))
        .with_max_delay(max)
        .without_max_times()
        .build()
        .map(round_to_micros as fn(Duration) -> Duration)
}

/// `pause` rounded to the nearest microsecond.
fn round_to_micros(pause: Duration) -> Duration {
    let micros = pause.as_nanos().saturating_add(500) / 1_000;
    Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(n: usize, first: Duration, max: Duration) -> Vec<Duration> {
        exponential(first, max).take(n).collect()
    }

    #[test]
    fn doubles_up_to_the_cap_and_never_ends() {
        let secs = Duration::from_secs;
        let expected = [2, 4, 8, 16, 30, 30, 30].map(secs);
        assert_eq!(first(7, secs(2), secs(30)), expected);
        assert_eq!(exponential(secs(2), secs(30)).nth(10_000), Some(secs(30)));
    }

    #[test]
    fn sub_second_pauses_are_exact() {
        let ms = Duration::from_millis;
        let expected = [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000].map(ms);
        assert_eq!(first(8, ms(100), ms(5_000)), expected);
        assert_eq!(first(3, ms(20), ms(50)), [ms(20), ms(40), ms(50)]);
    }

    #[test]
    fn a_first_pause_above_the_cap_is_the_cap() {
        let secs = Duration::from_secs;
        assert_eq!(first(2, secs(10), secs(3)), [secs(3), secs(3)]);
        assert_eq!(first(2, Duration::ZERO, secs(3)), [Duration::ZERO; 2]);
    }
}
