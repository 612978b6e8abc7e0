//! The layering of docs/architecture.md, checked: lower layers never name higher ones, and the
//! leaf crates use nothing of ours (config uses only util).

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Every source file of `module` (a file or a folder under server/src) that names one of
/// `forbidden`.
fn offenders(module: &str, forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let root = src.join(module);
    let files = if root.is_dir() {
        sources(&root)
    } else {
        vec![src.join(format!("{module}.rs"))]
    };
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read a source file");
        for name in forbidden {
            if text.contains(name) {
                out.push(format!("{} names {name}", f.display()));
            }
        }
    }
    out
}

#[test]
fn lower_layers_do_not_name_higher_ones() {
    let upward = ["clawplane_bridge", "crate::api", "crate::server"];
    let mut bad = Vec::new();
    for module in [
        "core", "store", "models", "channels", "auth", "error", "config",
    ] {
        bad.extend(offenders(module, &upward));
    }
    // The store, the model providers and the channel clients sit below the domain core.
    for module in ["store", "models", "channels"] {
        bad.extend(offenders(module, &["crate::core"]));
    }
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

/// Egress is an owned service (its state in `Egress`, fed by the store): it names neither
/// the gateway nor the rest of the core.
#[test]
fn egress_is_an_owned_service() {
    let bad = offenders("core/egress", &["Gateway", "crate::core", "super::super"]);
    assert!(
        bad.is_empty(),
        "egress reaches past its seam:\n{}",
        bad.join("\n")
    );
}

/// Runs (sessions, runs, delivery, wake, direct sends) are an owned service given the
/// store, the model and channel clients and their config sections: they name neither the
/// gateway nor the rest of the core.
#[test]
fn runs_are_an_owned_service() {
    let bad = offenders("core/runs", &["Gateway", "crate::core", "super::super"]);
    assert!(
        bad.is_empty(),
        "runs reach past their seam:\n{}",
        bad.join("\n")
    );
}

/// Webhooks in (ingress, sync) and inbound channel webhooks are owned services built on
/// runs: they name the runs service, never the gateway holder.
#[test]
fn webhooks_and_inbound_are_owned_services() {
    let mut bad = offenders("core/webhooks", &["Gateway", "super::super::Gateway"]);
    bad.extend(offenders("core/inbound", &["Gateway"]));
    assert!(
        bad.is_empty(),
        "a service reaches past its seam:\n{}",
        bad.join("\n")
    );
}

/// Devices and pairing are an owned service (its state in `Devices`, given the store and
/// `gateway.nodes.pairing`): it names neither the gateway nor the rest of the core.
#[test]
fn devices_is_an_owned_service() {
    let bad = offenders("core/devices", &["Gateway", "crate::core", "super::super"]);
    assert!(
        bad.is_empty(),
        "devices reach past their seam:\n{}",
        bad.join("\n")
    );
}

/// The store is the seam the backends plug in at: nothing else names redb's or
/// PostgreSQL's API.
#[test]
fn only_the_store_names_its_engines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(&src).expect("read server/src") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name != "store" {
            bad.extend(offenders(
                name,
                &[
                    "redb::",
                    "use redb",
                    "tokio_postgres",
                    "postgres::",
                    "async_nats",
                ],
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "a storage engine named outside the store:\n{}",
        bad.join("\n")
    );
}

#[test]
fn leaf_crates_use_nothing_of_ours() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (krate, allowed) in [
        ("util", &[][..]),
        ("proto", &[][..]),
        ("config", &["clawplane-util"][..]),
    ] {
        let manifest =
            std::fs::read_to_string(root.join(krate).join("Cargo.toml")).expect("read a manifest");
        for line in manifest.lines() {
            let dep = line.split(['=', ' ', '.']).next().unwrap_or("");
            if dep.starts_with("clawplane-") && !line.starts_with("name") {
                assert!(
                    allowed.contains(&dep),
                    "{krate}/Cargo.toml depends on {dep}; the leaves use nothing of ours"
                );
            }
        }
    }
}
