//! Prepares the WIT contract for `wit_bindgen::generate!`.
//!
//! The contract in `../wit` is the source of truth and is copied to
//! `$OUT_DIR/wit` unchanged, except that identifiers which collide with WIT
//! keywords are escaped with `%` (`list` is a keyword in WIT, so the
//! `capability` case `list` and the `list` function must be written `%list`).
//! Escaping does not change any name in the component's type, so the bindings
//! match the contract exactly. Once the contract escapes them itself this step
//! is a no-op.

use std::error::Error;
use std::fs;
use std::path::PathBuf;

/// WIT keywords that the contract uses as plain identifiers.
const KEYWORDS: &[&str] = &["list"];

fn escape_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    for keyword in KEYWORDS {
        if let Some(rest) = trimmed.strip_prefix(keyword) {
            let rest_trimmed = rest.trim_start();
            // An enum/variant case (`list,` or a last `list`) or a function
            // (`list: func(...)`).
            if rest_trimmed.is_empty()
                || rest_trimmed.starts_with(',')
                || rest_trimmed.starts_with(':')
            {
                return format!("{indent}%{trimmed}");
            }
        }
    }
    line.to_string()
}

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let src = manifest_dir.join("..").join("wit");
    let dst = PathBuf::from(std::env::var("OUT_DIR")?).join("wit");
    fs::create_dir_all(&dst)?;
    println!("cargo:rerun-if-changed={}", src.display());
    for entry in fs::read_dir(&src)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wit") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path)?;
        let escaped: Vec<String> = text.lines().map(escape_line).collect();
        let name = path.file_name().ok_or("WIT file without a name")?;
        fs::write(dst.join(name), escaped.join("\n") + "\n")?;
    }
    Ok(())
}
