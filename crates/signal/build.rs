//! Embeds the browser guest page (`ui/dist-guest`, built from `ui/guest` by `npm run build` in
//! `ui/`) in the server binary, so that a guest needs nothing but the server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist-guest");
    println!("cargo:rerun-if-changed={}", dist.display());
    let dist = dist.canonicalize().unwrap_or(dist);
    if !dist.join("index.html").is_file() {
        panic!(
            "the browser guest page is not built ({} is missing): run `npm install && npm run \
             build` in ui/ (scripts/setup, scripts/run and scripts/test do)",
            dist.join("index.html").display()
        );
    }
    let mut found = Vec::new();
    files(&dist, &mut found);
    found.sort();
    let mut code =
        String::from("/// The guest page's files: path under `ui/dist-guest`, contents.\n");
    code.push_str("pub(crate) static GUEST_FILES: &[(&str, &[u8])] = &[\n");
    for path in &found {
        let relative = path.strip_prefix(&dist).expect("under dist");
        let name = relative.to_string_lossy().replace('\\', "/");
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("write");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("guest_files.rs");
    std::fs::write(out, code).expect("write guest_files.rs");
}
