//! The layer order of `src/`, checked: every `crate::…` and `super::…` path in non-test code
//! may name only a module of its own layer or a lower one. The compiler accepts circles
//! between modules of one crate, so without this nothing keeps the order written in the
//! `lib.rs` tour (leaves, ports, services, handlers, routes, glue).

use std::collections::BTreeMap;
use std::path::Path;

const LEAVES: u8 = 0;
const PORTS: u8 = 1;
const SERVICES: u8 = 2;
const HANDLERS: u8 = 3;
const ROUTES: u8 = 4;
const GLUE: u8 = 5;

const LAYER_NAMES: [&str; 6] = ["leaves", "ports", "services", "handlers", "routes", "glue"];

/// Every module of the crate and its layer. A new file must be placed here: the test fails on
/// a module it does not know, so the order is decided when the file is added.
const LAYERS: &[(&str, u8)] = &[
    // Pure: no store, no network, no clock.
    ("signature", LEAVES),
    ("event", LEAVES),
    ("event::thin", LEAVES),
    ("objects", LEAVES),
    ("config", LEAVES),
    ("auth", LEAVES),
    ("access", LEAVES),
    ("identity", LEAVES),
    ("billing", LEAVES),
    ("billing::setup", LEAVES),
    ("billing::charge", LEAVES),
    ("notify", LEAVES),
    ("pages", LEAVES),
    ("console", LEAVES),
    ("dry", LEAVES),
    ("router", LEAVES),
    ("error", LEAVES),
    ("entity", LEAVES),
    ("provenance", LEAVES),
    ("serial", LEAVES),
    ("json", LEAVES),
    ("form", LEAVES),
    ("ceiling", LEAVES),
    ("event_log", LEAVES),
    ("record_index", LEAVES),
    // Catch-up's cursor, bounds and decisions; its run (store, Stripe, processing) is a handler.
    ("catchup", LEAVES),
    ("catchup::thin", LEAVES),
    // The HTTP port's vocabulary (requests, answers, the `Transport` trait) is plain data and
    // a declaration; the pure Stripe modules name it. Its adapters are ports.
    ("http", LEAVES),
    ("store::error", LEAVES),
    ("stripe", LEAVES),
    ("stripe::request", LEAVES),
    ("stripe::calls", LEAVES),
    ("stripe::error", LEAVES),
    ("stripe::retry", LEAVES),
    // Key-value and HTTP: the store, its KV adapter, Workers fetch, the fakes, and the
    // Stripe client that runs requests through the transport.
    ("store", PORTS),
    ("store::kv", PORTS),
    ("store::index", PORTS),
    ("store::entity", PORTS),
    ("store::sql", PORTS),
    ("stripe::fetch", PORTS),
    ("stripe::client", PORTS),
    ("testing", PORTS),
    ("services", SERVICES),
    ("handlers", HANDLERS),
    ("handlers::identity", HANDLERS),
    ("handlers::setup", HANDLERS),
    ("handlers::charges", HANDLERS),
    ("handlers::customers", HANDLERS),
    ("handlers::dry_run", HANDLERS),
    ("webhook", HANDLERS),
    ("admin", HANDLERS),
    ("queue", HANDLERS),
    ("catchup::run", HANDLERS),
    ("outbox", HANDLERS),
    ("routes", ROUTES),
    ("routes::access", ROUTES),
    ("routes::admin", ROUTES),
    ("routes::billing", ROUTES),
    ("routes::catchup", ROUTES),
    ("routes::ceiling", ROUTES),
    ("routes::event_log", ROUTES),
    ("routes::checkout", ROUTES),
    ("routes::console", ROUTES),
    ("routes::health", ROUTES),
    ("routes::identity", ROUTES),
    ("routes::notifications", ROUTES),
    ("routes::scheduled", ROUTES),
    ("routes::webhook", ROUTES),
    ("routes::entity", ROUTES),
    ("", GLUE),
];

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the crate root, `""`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("under src/");
            let text = std::fs::read_to_string(&path).expect("a source file");
            out.push((module_of(relative), text));
        }
    }
}

/// The text without comments and without `#[cfg(test)]` items: test code may reach for any
/// fake, and a doc comment may name any module.
fn production_code(text: &str) -> String {
    let without_comments: Vec<&str> = text
        .lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect();
    let text = without_comments.join("\n");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = skip_item(&rest[at + "#[cfg(test)]".len()..]);
    }
    out.push_str(rest);
    out
}

/// Skips one item: up to its `;` if that comes before any `{`, else to the matching `}`.
fn skip_item(text: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            ';' if depth == 0 => return &text[i + 1..],
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &text[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// The module paths a file names: `crate::a::b::C`, `crate::{a::X, b}`, `super::x`. A
/// `super::` inside an inline module (`mod keys { use super::*; }`) names the file's own
/// module; the file's parent is only taken when the path leads to a known module there.
fn named_paths(module: &str, code: &str, known: &BTreeMap<&str, u8>) -> Vec<Vec<String>> {
    let parent: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let parent = &parent[..parent.len().saturating_sub(1)];
    let mut paths = Vec::new();
    for (prefix, base) in [("crate::", &[][..]), ("super::", parent)] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            for tail in expand(rest) {
                let mut path = base.to_vec();
                path.extend(tail);
                if prefix == "super::" && module_named(&path, known).0.is_empty() {
                    continue;
                }
                paths.push(path);
            }
        }
    }
    paths
}

/// The paths at the start of `text`: `a::b::C` or a brace group `{a::X, b::{c, d}}`.
fn expand(text: &str) -> Vec<Vec<String>> {
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut items = Vec::new();
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return items.iter().flat_map(|item| expand(item.trim())).collect();
    }
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segments.push(rest[..end].to_owned());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(after) if after.starts_with('{') => {
                return expand(after)
                    .into_iter()
                    .map(|tail| segments.iter().cloned().chain(tail).collect())
                    .collect();
            }
            Some(after) => rest = after,
            None => break,
        }
    }
    vec![segments]
}

/// The longest known module that `path` starts with (`store::keys::event` is in `store`).
fn module_named<'a>(path: &[String], known: &'a BTreeMap<&str, u8>) -> (&'a str, u8) {
    for len in (0..=path.len()).rev() {
        let candidate = path[..len].join("::");
        if let Some((name, layer)) = known.get_key_value(candidate.as_str()) {
            return (name, *layer);
        }
    }
    ("", GLUE)
}

/// Every arrow from a module to one in a higher layer, as `from -> to (layer -> layer)`.
fn back_arrows(files: &[(String, String)]) -> Result<Vec<String>, String> {
    let known: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut arrows = Vec::new();
    for (module, text) in files {
        let Some(&from_layer) = known.get(module.as_str()) else {
            return Err(format!("src module `{module}` has no layer in LAYERS"));
        };
        for path in named_paths(module, &production_code(text), &known) {
            let (to, to_layer) = module_named(&path, &known);
            if to_layer > from_layer {
                arrows.push(format!(
                    "{module} -> {to} ({} -> {})",
                    LAYER_NAMES[from_layer as usize], LAYER_NAMES[to_layer as usize]
                ));
            }
        }
    }
    arrows.sort();
    arrows.dedup();
    Ok(arrows)
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 20, "src/ was read: {} files", files.len());
    let modules: Vec<&str> = files.iter().map(|(module, _)| module.as_str()).collect();
    let stale: Vec<&str> = LAYERS
        .iter()
        .map(|(module, _)| *module)
        .filter(|module| !modules.contains(module))
        .collect();
    assert!(
        stale.is_empty(),
        "LAYERS names modules that are gone: {stale:?}"
    );
    let arrows = back_arrows(&files).unwrap_or_else(|missing| panic!("{missing}"));
    assert!(
        arrows.is_empty(),
        "imports against the layer order:\n{}",
        arrows.join("\n")
    );
}

#[test]
fn the_layer_check_catches_the_old_circle() {
    let files = vec![
        (
            "store".to_owned(),
            "use crate::webhook::EventRecord;\n".to_owned(),
        ),
        (
            "error".to_owned(),
            "use crate::{config::ConfigError, handlers::identity::CreateError};\n".to_owned(),
        ),
        (
            "handlers::charges".to_owned(),
            "use super::{Step, StepError};\nuse crate::webhook::Outcome;\n".to_owned(),
        ),
        (
            "event".to_owned(),
            "#[cfg(test)]\nmod tests { use crate::testing::FakeTransport; }\n// crate::services\n"
                .to_owned(),
        ),
    ];
    assert_eq!(
        back_arrows(&files).unwrap(),
        [
            "error -> handlers::identity (leaves -> handlers)",
            "store -> webhook (ports -> handlers)",
        ]
    );
    let unknown = vec![("mystery".to_owned(), String::new())];
    assert!(back_arrows(&unknown).is_err());
}

/// Every arrow between two modules, `from -> to`, as `crate::` and `super::` paths name them.
fn arrows(files: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let known: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (module, text) in files {
        let targets = graph.entry(module.clone()).or_default();
        for path in named_paths(module, &production_code(text), &known) {
            let (to, _) = module_named(&path, &known);
            if to != module && !targets.iter().any(|t| t == to) {
                targets.push(to.to_owned());
            }
        }
    }
    graph
}

/// The import circles: each a set of modules that reach one another through their imports.
/// Within one layer the layer check allows any arrow, so this is what keeps a layer free of
/// circles (a module and its parent's `super::` vocabulary included: the parent declares the
/// child with `mod`, which is not an import).
fn circles(files: &[(String, String)]) -> Vec<Vec<String>> {
    let graph = arrows(files);
    let reaches = |from: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(at) = stack.pop() {
            for to in graph.get(&at).into_iter().flatten() {
                if seen.insert(to.clone()) {
                    stack.push(to.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for module in graph.keys() {
        let forward = reaches(module);
        if !forward.contains(module) {
            continue;
        }
        let mut circle: Vec<String> = forward
            .into_iter()
            .filter(|other| reaches(other).contains(module))
            .collect();
        circle.sort();
        if !found.contains(&circle) {
            found.push(circle);
        }
    }
    found
}

#[test]
fn no_modules_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert_eq!(circles(&files), Vec::<Vec<String>>::new(), "import circles");
}

#[test]
fn the_circle_check_catches_the_charges_and_setup_circle() {
    // What handlers::charges and handlers::setup were: recovery helpers one way, the customer
    // record the other.
    let files = vec![
        (
            "handlers::charges".to_owned(),
            "use super::{Step, StepError};\nfn f() { super::setup::save_customer(); }\n".to_owned(),
        ),
        (
            "handlers::setup".to_owned(),
            "use super::charges::{record_recovery, recovery_moved};\n".to_owned(),
        ),
        ("handlers".to_owned(), String::new()),
    ];
    assert_eq!(
        circles(&files),
        [vec![
            "handlers::charges".to_owned(),
            "handlers::setup".to_owned()
        ]]
    );
}
