//! The Cron Trigger (`[triggers] crons` in wrangler.toml, every minute): one run is a list of
//! steps, one after another, each bounded so the whole run stays within the Workers Free
//! plan (50 subrequests, 10 ms CPU per invocation) and each resumable by the next run. The
//! scheduled time of the event is the run's "now" (`wrangler dev` passes one with
//! `/cdn-cgi/local/scheduled?cron=…&time=<ms>`, so tests can move time); signatures carry
//! the wall clock. One JSON log line per run says what each step did.

use serde::Serialize;
use worker::{console_error, console_log, Date, Env};

use crate::catchup::thin::ThinBounds;
use crate::catchup::Bounds;
use crate::error::AppError;
use crate::outbox::{self, RetryReport, RETRY_SUBREQUEST_BUDGET, SUBREQUESTS_PER_ALERT};
use crate::services::{Trace, TraceData};

use super::{catchup, Ctx};

/// Subrequests one invocation may make on the Workers Free plan.
const FREE_PLAN_SUBREQUESTS: usize = 50;

/// The run: every step in order. A failed step is logged and does not stop the next.
pub async fn run(env: &Env, cron: &str, scheduled_ms: f64) {
    let started = Date::now().as_millis();
    let wall = (started / 1000) as i64;
    let now = if scheduled_ms.is_finite() && scheduled_ms > 0.0 {
        (scheduled_ms / 1000.0).floor() as i64
    } else {
        wall
    };
    let trace = Trace::new();
    let ctx = Ctx::new(env, now, &trace);
    // Catch-up is due every CATCHUP_EVERY_MINUTES; on those runs it goes first and the
    // notifications get what is left of the run's subrequests.
    // The thin catch-up (CATCHUP_THIN_EVENTS) is due the minute after; never both in one run.
    let catch_up = catchup::step(&ctx).await;
    let thin = match &catch_up {
        Ok(None) => catchup::thin_step(&ctx).await,
        _ => Ok(None),
    };
    // A catch-up run may raise the operator's alerts (with OPS_NOTIFY_URL): events found
    // undelivered and the endpoint silent, one send each, counted whether or not the step
    // then failed.
    let alert = match (
        &catch_up,
        ctx.config().ok().and_then(|c| c.ops_notify_url.as_ref()),
    ) {
        (Ok(None), _) | (_, None) => 0,
        // The silent-endpoint check reads the index's marks first.
        _ => 2 * SUBREQUESTS_PER_ALERT + 1,
    };
    let budget = match (&catch_up, &thin) {
        (Ok(None), Ok(None)) => RETRY_SUBREQUEST_BUDGET,
        (Ok(None), _) => {
            FREE_PLAN_SUBREQUESTS.saturating_sub(ThinBounds::FREE_PLAN.max_subrequests() as usize)
        }
        _ => FREE_PLAN_SUBREQUESTS
            .saturating_sub(Bounds::FREE_PLAN.max_subrequests() as usize)
            .saturating_sub(alert),
    };
    let mut steps = Vec::with_capacity(2);
    if !matches!(catch_up, Ok(None)) {
        steps.push(step("catch_up", catch_up));
    }
    if !matches!(thin, Ok(None)) {
        steps.push(step("catch_up_thin", thin));
    }
    steps.push(step(
        "retry_notifications",
        retry_notifications(&ctx, wall, budget).await,
    ));
    let log = RunLog {
        scheduled: cron,
        now,
        steps: &steps,
        duration_ms: (Date::now().as_millis() - started) as f64,
        trace: trace.snapshot(),
    };
    if let Ok(line) = serde_json::to_string(&log) {
        console_log!("{line}");
    }
}

/// Due notifications, earliest first, within the step's share of the run's subrequests.
async fn retry_notifications(
    ctx: &Ctx<'_>,
    wall: i64,
    budget: usize,
) -> Result<RetryReport, AppError> {
    let services = ctx.services()?;
    Ok(outbox::retry_due(
        services.store,
        services.transport,
        services.notify_target(wall),
        ctx.now,
        budget,
    )
    .await?)
}

#[derive(Serialize)]
struct RunLog<'a> {
    /// The cron expression that fired.
    scheduled: &'a str,
    /// The scheduled time, unix seconds.
    now: i64,
    steps: &'a [StepLog],
    duration_ms: f64,
    #[serde(flatten)]
    trace: TraceData,
}

#[derive(Serialize)]
struct StepLog {
    step: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn step<R: Serialize>(name: &'static str, result: Result<R, AppError>) -> StepLog {
    match result {
        Ok(report) => StepLog {
            step: name,
            report: crate::json::to_value(&report).ok(),
            error: None,
        },
        Err(error) => {
            console_error!("{{\"step\":{name:?},\"error\":{:?}}}", error.log_text());
            StepLog {
                step: name,
                report: None,
                error: Some(error.code().to_owned()),
            }
        }
    }
}
