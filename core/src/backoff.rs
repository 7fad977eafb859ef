//! The one backoff policy every retry loop uses: exponential, without jitter.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays starting at `first`, doubling up to `max`, forever.
pub fn exponential(first: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let delays: Vec<Duration> =
            exponential(Duration::from_millis(100), Duration::from_millis(500))
                .take(5)
                .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 500, 500].map(Duration::from_millis).to_vec()
        );
    }
}
