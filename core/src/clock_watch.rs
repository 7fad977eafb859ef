//! Checks the clock now and then, so an idle process notices a lost state
//! or a dead server before its next operation does.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use crate::error::Error;
use crate::runtime::Runtime;

/// Checks the clock every `every` until the instance is dropped, shut down
/// or faulted. A lost state is reported (which faults the instance: it turns
/// unhealthy and its workers stop); an unreachable clock is reported once
/// and makes the instance unhealthy until a check passes again.
pub(crate) async fn run(runtime: Weak<Runtime>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(rt) = runtime.upgrade() else {
            return;
        };
        if rt.closed.load(Ordering::SeqCst) || rt.faulted.load(Ordering::SeqCst) {
            return;
        }
        let checked = tokio::time::timeout(every, rt.clock.check()).await;
        match checked {
            Ok(Ok(())) => {
                if rt.clock_down.swap(false, Ordering::SeqCst) {
                    tracing::info!(app = %rt.config.app, clock = rt.clock.name(), "the clock answers again");
                }
            }
            Ok(Err(error)) if error.is_state_lost() => {
                rt.report(&Error::Backend(error));
                return;
            }
            Ok(Err(error)) => {
                if !rt.clock_down.swap(true, Ordering::SeqCst) {
                    rt.report(&Error::Connection(error));
                }
            }
            Err(_) => {
                if !rt.clock_down.swap(true, Ordering::SeqCst) {
                    rt.report(&Error::Connection(crate::error::BackendError::new(
                        rt.clock.name(),
                        "check",
                        &rt.config.app,
                        format!("the clock did not answer within {every:?}"),
                    )));
                }
            }
        }
    }
}
