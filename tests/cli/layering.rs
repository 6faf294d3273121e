//! Dependencies point one way (DESIGN §1, STYLE.md): the client depends on
//! the model only, the config (plain data) on the atomic-write helper only,
//! and neither knows clap. Read from the sources, so a stray `use` fails
//! here.

use crate::common::{root, tree};

/// `(file:line, module)` for every `crate::module` in code (comments and
/// doc comments, which may name other modules, are left out), and for every
/// use of `clap`.
fn imports(dir: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let files = tree(&root().join("src").join(dir));
    for (file, bytes) in files.iter().filter(|(name, _)| name.ends_with(".rs")) {
        let text = String::from_utf8_lossy(bytes);
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let at = format!("src/{dir}/{file}:{}", n + 1);
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
