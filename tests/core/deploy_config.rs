//! wrangler.toml's environments: vars and KV bindings are not inherited by `[env.*]`, so each
//! environment must repeat them, with the same pinned Stripe API version as the top level
//! (the one tools/register-webhook.mjs subscribes endpoints with).

use std::collections::BTreeMap;

use stripe_edge_webhooks::config::DEFAULT_STRIPE_API_VERSION;
use stripe_edge_webhooks::provenance::is_deployment_id;

const WRANGLER_TOML: &str = include_str!("../../wrangler.toml");

/// Section name (`vars`, `env.staging.vars`, `env.staging.kv_namespaces`, …) → its `key = value`
/// lines, for the flat tables this file uses.
fn sections() -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = String::new();
    for line in WRANGLER_TOML.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            current = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            sections.entry(current.clone()).or_default();
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            sections.entry(current.clone()).or_default().push((
                key.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            ));
        }
    }
    sections
}

fn keys(entries: &[(String, String)]) -> Vec<&str> {
    let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn staging_and_production_repeat_every_var_and_the_state_binding() {
    let sections = sections();
    let top_vars = &sections["vars"];
    for env in ["staging", "production"] {
        let vars = sections
            .get(&format!("env.{env}.vars"))
            .unwrap_or_else(|| panic!("wrangler.toml has no [env.{env}.vars]"));
        assert_eq!(keys(vars), keys(top_vars), "[env.{env}.vars]");
        let version = vars
            .iter()
            .find(|(k, _)| k == "STRIPE_API_VERSION")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            version,
            Some(DEFAULT_STRIPE_API_VERSION),
            "[env.{env}.vars]"
        );
        // Each deployment marks what it creates with its own id (`crate::provenance`).
        let id = |vars: &[(String, String)]| {
            vars.iter()
                .find(|(k, _)| k == "DEPLOYMENT_ID")
                .map(|(_, v)| v.clone())
        };
        assert_ne!(id(vars), id(top_vars), "[env.{env}.vars] DEPLOYMENT_ID");
        assert!(
            id(vars).is_some_and(|v| is_deployment_id(&v)),
            "[env.{env}.vars]"
        );
        let api_base = vars.iter().find(|(k, _)| k == "STRIPE_API_BASE").unwrap();
        assert!(
            api_base.1.starts_with("https://"),
            "[env.{env}.vars] STRIPE_API_BASE"
        );

        let kv = sections
            .get(&format!("env.{env}.kv_namespaces"))
            .unwrap_or_else(|| panic!("wrangler.toml has no [[env.{env}.kv_namespaces]]"));
        assert!(
            kv.contains(&("binding".into(), "STATE".into())),
            "{env}: {kv:?}"
        );
        assert!(
            kv.iter().any(|(k, v)| k == "id" && v.len() == 32),
            "{env}: {kv:?}"
        );
    }
    let ids: std::collections::BTreeSet<_> = ["vars", "env.staging.vars", "env.production.vars"]
        .iter()
        .filter_map(|s| sections[*s].iter().find(|(k, _)| k == "DEPLOYMENT_ID"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "every environment has its own DEPLOYMENT_ID: {ids:?}"
    );
}

#[test]
fn every_environment_limits_the_anonymous_routes_with_the_rate_limiting_binding() {
    let sections = sections();
    for prefix in ["", "env.staging.", "env.production."] {
        let limits = sections
            .get(&format!("{prefix}ratelimits"))
            .unwrap_or_else(|| panic!("wrangler.toml has no [[{prefix}ratelimits]]"));
        for name in ["SETUP_RATE_LIMITER", "SUCCESS_RATE_LIMITER"] {
            assert!(
                limits.contains(&("name".into(), name.into())),
                "{prefix}ratelimits: {name}"
            );
        }
        // Cloudflare allows a period of 10 or 60 seconds only.
        let simple: Vec<&String> = limits
            .iter()
            .filter(|(k, _)| k == "simple")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(simple.len(), 2, "{prefix}");
        for value in simple {
            assert!(
                value.contains("period = 60") || value.contains("period = 10"),
                "{value}"
            );
        }
    }
}

#[test]
fn no_secret_is_written_into_wrangler_toml() {
    for name in ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "ADMIN_TOKEN"] {
        assert!(
            !WRANGLER_TOML
                .lines()
                .any(|line| line.trim_start().starts_with(name)),
            "{name} belongs in `wrangler secret put`, not wrangler.toml"
        );
    }
    for prefix in ["sk_live_", "sk_test_", "whsec_", "rk_live_"] {
        assert!(!WRANGLER_TOML.contains(prefix), "{prefix}");
    }
}

/// The entity queues (src/routes/entity.rs) at the top level and in each environment: the
/// binding the worker names, and the migration that creates the SQLite-backed class.
#[test]
fn every_environment_binds_the_entity_queues_and_creates_their_class() {
    let sections = sections();
    for prefix in ["", "env.staging.", "env.production."] {
        let binding = sections
            .get(&format!("{prefix}durable_objects.bindings"))
            .unwrap_or_else(|| panic!("wrangler.toml has no [[{prefix}durable_objects.bindings]]"));
        assert!(
            binding.contains(&("name".into(), "ENTITIES".into())),
            "{prefix}: {binding:?}"
        );
        assert!(
            binding.contains(&("class_name".into(), "EntityQueue".into())),
            "{prefix}: {binding:?}"
        );
        let migration = sections
            .get(&format!("{prefix}migrations"))
            .unwrap_or_else(|| panic!("wrangler.toml has no [[{prefix}migrations]]"));
        assert!(
            migration.contains(&("tag".into(), "v1".into())),
            "{prefix}: {migration:?}"
        );
        assert!(
            migration.contains(&("new_sqlite_classes".into(), r#"["EntityQueue"]"#.into())),
            "{prefix}: {migration:?}"
        );
        // The setup ceiling's counter (src/routes/ceiling.rs), created by the next migration.
        for pair in [("name", "CEILING"), ("class_name", "SetupCeiling")] {
            assert!(
                binding.contains(&(pair.0.into(), pair.1.into())),
                "{prefix}: {binding:?}"
            );
        }
        for pair in [("tag", "v2"), ("new_sqlite_classes", r#"["SetupCeiling"]"#)] {
            assert!(
                migration.contains(&(pair.0.into(), pair.1.into())),
                "{prefix}: {migration:?}"
            );
        }
        // The event index behind `GET /events` (src/routes/event_log.rs), by the third.
        for pair in [("name", "EVENT_LOG"), ("class_name", "EventLog")] {
            assert!(
                binding.contains(&(pair.0.into(), pair.1.into())),
                "{prefix}: {binding:?}"
            );
        }
        for pair in [("tag", "v3"), ("new_sqlite_classes", r#"["EventLog"]"#)] {
            assert!(
                migration.contains(&(pair.0.into(), pair.1.into())),
                "{prefix}: {migration:?}"
            );
        }
    }
}
