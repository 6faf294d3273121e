//! Dependencies point one way (DESIGN §1, STYLE.md): the model imports
//! nothing of ours but thread helpers; input, render and sink depend on the
//! model and not on each other; the client depends on the model only; the
//! config (plain data) on the atomic-write helper only; nothing offline
//! knows clap, tokio or reqwest. Read from the sources, so a stray `use`
//! fails here.

use crate::common::{root, tree};

/// `(file:line, module)` for every `crate::module` in code (comments and
/// doc comments, which may name other modules, are left out), and for every
/// use of `clap`.
/// `dir` may also be a single file (`generate.rs`).
fn imports(dir: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let path = root().join("src").join(dir);
    let files = if path.is_file() {
        let bytes = std::fs::read(&path).expect("readable source");
        std::iter::once((String::new(), bytes)).collect()
    } else {
        tree(&path)
    };
    for (file, bytes) in files
        .iter()
        .filter(|(name, _)| name.is_empty() || name.ends_with(".rs"))
    {
        let text = String::from_utf8_lossy(bytes);
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("mod tests") {
                break; // unit tests may build their fixtures any way they like
            }
            let code = line.split("//").next().unwrap_or_default();
            let at = format!("src/{dir}/{file}:{}", n + 1).replace(".rs/:", ".rs:");
            for (i, _) in code.match_indices("crate::") {
                let module: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((at.clone(), module));
            }
            for runtime in ["clap", "tokio", "reqwest"] {
                if code.contains(runtime) {
                    found.push((at.clone(), runtime.to_owned()));
                }
            }
        }
    }
    found
}

fn assert_imports_only(dir: &str, allowed: &[&str]) {
    let stray: Vec<_> = imports(dir)
        .into_iter()
        .filter(|(_, module)| !allowed.contains(&module.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "src/{dir} imports more than {allowed:?}: {stray:#?}"
    );
}

#[test]
fn the_client_depends_on_the_model_only() {
    // `client` is itself named in its own tests' paths.
    assert_imports_only("client", &["model", "client", "tokio", "reqwest"]);
}

#[test]
fn the_config_is_plain_data() {
    assert_imports_only("config", &["atomic", "schema"]);
}

#[test]
fn input_render_and_sink_depend_on_the_model_not_on_each_other() {
    assert_imports_only("input", &["input", "model", "parallel"]);
    assert_imports_only("render", &["render", "model", "schema", "config"]);
    assert_imports_only("sink", &["sink", "model", "schema"]);
}

/// Loading reads an output directory and talks to a database; it knows
/// nothing of the command line.
#[test]
fn load_knows_no_command_line() {
    let stray: Vec<_> = imports("load")
        .into_iter()
        .filter(|(_, module)| ["cli", "clap"].contains(&module.as_str()))
        .collect();
    assert!(stray.is_empty(), "src/load reaches too far: {stray:#?}");
}

#[test]
fn the_model_depends_on_nothing_but_the_thread_helpers() {
    assert_imports_only("model", &["model", "parallel"]);
}

/// Reading, building, rendering and writing work offline: none of them
/// knows the client, the command line, an async runtime or HTTP. (The
/// config they read is plain data, checked above.)
#[test]
fn the_offline_core_knows_no_network_or_command_line() {
    let core = [
        "input",
        "model",
        "render",
        "sink",
        "output",
        "generate.rs",
        "diff",
        "schema",
        "atomic.rs",
        "parallel.rs",
    ];
    for part in core {
        let stray: Vec<_> = imports(part)
            .into_iter()
            .filter(|(_, module)| {
                ["client", "cli", "clap", "tokio", "reqwest"].contains(&module.as_str())
            })
            .collect();
        assert!(
            stray.is_empty(),
            "src/{part} reaches outside the offline core: {stray:#?}"
        );
    }
}
