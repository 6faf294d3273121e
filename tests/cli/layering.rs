//! Dependencies point one way (DESIGN §1, STYLE.md): the client and the
//! config depend on the model (and the config on the atomic-write helper)
//! and on nothing else of ours, and no library type outside the command
//! line knows clap. Read from the sources, so a stray `use` fails here.

use std::path::{Path, PathBuf};

use crate::common::root;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("readable dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `(file:line, module)` for every `crate::module` in code (comments and
/// doc comments, which may name other modules, are left out), and for every
/// use of `clap`.
fn imports(dir: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for file in sources(&root().join("src").join(dir)) {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let at = format!("{}:{}", file.display(), n + 1);
            for (i, _) in code.match_indices("crate::") {
                let module: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((at.clone(), module));
            }
            if code.contains("clap") {
                found.push((at.clone(), "clap".to_owned()));
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
    assert_imports_only("client", &["model", "client"]);
}

#[test]
fn the_config_is_plain_data() {
    assert_imports_only("config", &["atomic"]);
}
