//! Records how the benchmark binary was built, for the method section of its reports: the Cargo
//! profile and its optimisation settings, the target, rustc, RUSTFLAGS, and the versions of the
//! peer crates from the workspace's Cargo.lock. Reads files only; sets `QB_*` environment
//! variables for `env!`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../Cargo.toml");
    println!("cargo:rerun-if-changed=../Cargo.lock");

    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let profile = profile_name(Path::new(&var("OUT_DIR")));
    let settings = profile_settings(&root.join("Cargo.toml"), &profile);
    let get = |k: &str, default: &str| settings.get(k).cloned().unwrap_or(default.to_string());

    let rustc = std::process::Command::new(var("RUSTC"))
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();

    emit("QB_PROFILE", &profile);
    emit("QB_OPT_LEVEL", &var("OPT_LEVEL"));
    emit(
        "QB_DEBUG",
        &settings.get("debug").cloned().unwrap_or(var("DEBUG")),
    );
    emit("QB_LTO", &get("lto", "false"));
    emit(
        "QB_CODEGEN_UNITS",
        &get("codegen-units", if profile == "dev" { "256" } else { "16" }),
    );
    emit("QB_TARGET", &var("TARGET"));
    emit("QB_RUSTC", rustc.trim());
    emit(
        "QB_RUSTFLAGS",
        &var("CARGO_ENCODED_RUSTFLAGS").replace('\u{1f}', " "),
    );
    emit(
        "QB_VERSIONS",
        &lock_versions(&root.join("Cargo.lock")).join(", "),
    );
}

fn emit(key: &str, value: &str) {
    println!("cargo:rustc-env={key}={}", value.replace(['\n', '\r'], " "));
}

/// OUT_DIR is `<target-dir>/[<triple>/]<profile dir>/build/<pkg>-<hash>/out`; the profile directory
/// is `debug` for `dev` and the profile's name otherwise.
fn profile_name(out_dir: &Path) -> String {
    let dir = out_dir
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if dir == "debug" {
        "dev".to_string()
    } else {
        dir
    }
}

/// The settings of `[profile.<name>]` in the workspace manifest, following `inherits`, over
/// Cargo's defaults, with `CARGO_PROFILE_<NAME>_<KEY>` overrides from the environment.
fn profile_settings(manifest: &Path, name: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            current = line
                .strip_prefix("[profile.")
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_string);
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
    }
    // The chain from the built-in root to `name`.
    let mut chain = vec![name.to_string()];
    while let Some(parent) = sections
        .get(chain.last().unwrap())
        .and_then(|s| s.get("inherits"))
        .cloned()
        .or_else(|| match chain.last().unwrap().as_str() {
            "bench" => Some("release".into()),
            "test" => Some("dev".into()),
            _ => None,
        })
    {
        if chain.contains(&parent) {
            break;
        }
        chain.push(parent);
    }
    let mut settings = BTreeMap::new();
    for profile in chain.iter().rev() {
        if let Some(s) = sections.get(profile) {
            settings.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    for key in ["lto", "codegen-units", "debug"] {
        for profile in chain.iter().rev() {
            let env = format!(
                "CARGO_PROFILE_{}_{}",
                profile.to_uppercase().replace('-', "_"),
                key.to_uppercase().replace('-', "_")
            );
            println!("cargo:rerun-if-env-changed={env}");
            if let Ok(v) = std::env::var(&env) {
                settings.insert(key.to_string(), v);
            }
        }
    }
    settings
}

/// `name version` of the peer crates, from Cargo.lock.
fn lock_versions(lock: &Path) -> Vec<String> {
    const PEERS: &[&str] = &[
        "talc",
        "rlsf",
        "linked_list_allocator",
        "dlmalloc",
        "buddy_system_allocator",
        "embedded-alloc",
        "critical-section",
        "mimalloc",
        "libmimalloc-sys",
        "spin",
        "spinning_top",
    ];
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut found = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(n), Some(v)) = (&name, line.strip_prefix("version = ")) {
            if PEERS.contains(&n.as_str()) {
                found.push(format!("{n} {}", v.trim_matches('"')));
            }
            name = None;
        }
    }
    found.sort();
    found
}
