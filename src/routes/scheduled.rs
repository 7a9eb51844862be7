//! The scheduled handler's adapter: the cron fires every minute (wrangler.toml `[triggers]`),
//! and each step decides whether it is due and stays within its bounds, one after another.
//! Each step leaves one JSON line in the log; a failing step does not stop the next.

use worker::{console_error, console_log, Env};

use crate::services::Trace;

use super::{catchup, Ctx};

/// `scheduled_ms`: the scheduled event's time, the steps' "now".
pub async fn run(env: &Env, scheduled_ms: f64, cron: &str) {
    let now = (scheduled_ms / 1000.0) as i64;

    let trace = Trace::new();
    let ctx = Ctx::new(env, now, &trace);
    match catchup::step(&ctx).await {
        Ok(None) => {}
        Ok(Some(report)) => log(
            "catch_up",
            cron,
            &serde_json::json!({ "report": report }),
            &trace,
        ),
        Err(error) => {
            console_error!("{{\"error\":{:?}}}", error.log_text());
            log(
                "catch_up",
                cron,
                &serde_json::json!({ "error": error.code() }),
                &trace,
            );
        }
    }
}

fn log(step: &str, cron: &str, fields: &serde_json::Value, trace: &Trace) {
    let mut line = serde_json::json!({ "scheduled": step, "cron": cron });
    if let (Some(line), Some(fields)) = (line.as_object_mut(), fields.as_object()) {
        line.extend(fields.clone());
        if let Ok(serde_json::Value::Object(trace)) = serde_json::to_value(trace.snapshot()) {
            line.extend(trace);
        }
    }
    console_log!("{line}");
}
