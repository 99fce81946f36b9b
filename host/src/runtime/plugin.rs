//! Loading a plugin: digest pinning, compilation (or the cached artifact),
//! contract-version check, linking, and the manifest.

use super::Runtime;
use super::bindings::PluginPre;
use super::sandbox::{CallError, StoreState};
use crate::model::Manifest;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The interface a connector exports (without version).
pub const CONNECTOR_EXPORT: &str = "provisio:connector/connector";
const CONTRACT_PACKAGE: &str = "provisio:connector/";

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read plugin '{name}' at {path}: {source}")]
    Read {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The pinned digest is malformed.
    #[error("plugin '{name}': sha256 pin '{pin}' is not 64 hex digits")]
    BadPin {
        /// Plugin name.
        name: String,
        /// The pin.
        pin: String,
    },
    /// The file's digest differs from the pin.
    #[error(
        "plugin '{name}' at {path} has sha256 {actual}, but the config pins {expected}; \
         refusing to load it. If you trust the new file, set sha256 = \"{actual}\" for this plugin"
    )]
    DigestMismatch {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Pinned digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// Not WebAssembly, or a core module rather than a component.
    #[error("plugin '{name}' at {path} {what}")]
    NotAComponent {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },
    /// wasmtime could not compile it.
    #[error("plugin '{name}' at {path} could not be compiled: {message}")]
    Compile {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// It does not export the connector interface.
    #[error(
        "plugin '{name}' at {path} does not export {CONNECTOR_EXPORT} (its exports: {exports}); \
         is it a Provisio connector built with the SDK?"
    )]
    NotAConnector {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// What it exports.
        exports: String,
    },
    /// Built for a contract version this host does not implement.
    #[error(
        "plugin '{name}' at {path} was built for contract provisio:connector@{found}, but this host \
         implements @{CONTRACT_VERSION} (compatible: 0.1.x); rebuild the plugin against a matching SDK \
         or upgrade Provisio"
    )]
    IncompatibleContract {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Version found.
        found: String,
    },
    /// It imports something the host does not provide.
    #[error(
        "plugin '{name}' at {path} imports {imports}, which the host does not provide; \
         connectors may import only provisio:connector/* and WASI"
    )]
    UnknownImports {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// The offending imports.
        imports: String,
    },
    /// Linking failed.
    #[error("plugin '{name}' at {path} cannot be linked: {message}")]
    Link {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// The component holds more instances, memories or tables than the host
    /// allows (see [`super::shape::COMPONENT_CAPS`]).
    #[error("plugin '{name}' at {path} is refused: {source}")]
    Shape {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// What was over which cap.
        source: super::shape::ShapeError,
    },
    /// `describe` failed.
    #[error("plugin '{name}' at {path}: describe failed: {source}")]
    Describe {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// Cause.
        source: Box<CallError>,
    },
    /// A default mapping of its manifest is refused: it does not parse, its
    /// worst case is over the expression limits, or there are too many.
    #[error(
        "plugin '{name}' at {path} is refused: its {problem}. A connector's default mappings \
         are checked when it loads; its author must fix them (an operator override cannot)"
    )]
    DefaultMapping {
        /// Plugin name.
        name: String,
        /// Path.
        path: PathBuf,
        /// The target attribute of the refused mapping (control characters
        /// shown escaped), if one.
        target: Option<String>,
        /// What is wrong, naming the mapping, its target and the limit
        /// (control characters shown escaped).
        problem: String,
        /// The check's own error.
        source: Box<crate::mapping::DefaultsError>,
    },
}

/// Control characters shown as escapes, so a manifest string cannot drive
/// the terminal through an error message.
fn visible(s: &str) -> String {
    s.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() {
                Box::new(c.escape_default())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect()
}

/// Refuse a manifest whose default mappings fail
/// [`crate::mapping::check_defaults`].
pub(crate) fn check_manifest(
    name: &str,
    path: &Path,
    manifest: &Manifest,
) -> Result<(), PluginError> {
    crate::mapping::check_defaults(manifest).map_err(|source| PluginError::DefaultMapping {
        name: name.to_string(),
        path: path.to_path_buf(),
        target: source.target().map(visible),
        problem: visible(&source.to_string()),
        source: Box::new(source),
    })
}

/// How long the loading steps took.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadTimings {
    /// Whether the precompiled artifact came from the cache.
    pub from_cache: bool,
    /// Compile or deserialise.
    pub compile: Duration,
    /// Link (`InstancePre`).
    pub link: Duration,
    /// First instantiate + describe.
    pub describe: Duration,
}

/// A loaded plugin, ready to be instantiated cheaply for each unit of work.
pub struct Plugin {
    /// The operator's name for it.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// sha256 of the file.
    pub sha256: String,
    /// File size.
    pub size: u64,
    /// The contract version it was built for.
    pub contract: String,
    /// Its imports.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// Its manifest.
    pub manifest: Manifest,
    /// Load timings.
    pub timings: LoadTimings,
    pub(crate) pre: PluginPre<StoreState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}

/// sha256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `found` is compatible with [`CONTRACT_VERSION`] (same major and,
/// for 0.x, same minor).
pub fn contract_compatible(found: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(found), parse(CONTRACT_VERSION)) {
        (Some((fm, fn_)), Some((hm, hn))) => fm == hm && (hm != 0 || fn_ == hn),
        _ => false,
    }
}

fn check_component_header(name: &str, path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let err = |what: &str| PluginError::NotAComponent {
        name: name.to_string(),
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(err("is not a WebAssembly file (no \\0asm header)"));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(err(
            "is a core WebAssembly module, not a component; build it with `--target wasm32-wasip2`",
        )),
        _ => Err(err("has an unknown WebAssembly version or layer")),
    }
}

impl Runtime {
    /// Load a plugin from a file, refusing it if `pin` is given and differs.
    pub async fn load_plugin(
        &self,
        name: &str,
        path: &Path,
        pin: Option<&str>,
    ) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        let sha256 = sha256_hex(&bytes);
        if let Some(pin) = pin {
            let pin_norm = pin.trim().to_ascii_lowercase();
            if pin_norm.len() != 64 || !pin_norm.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(PluginError::BadPin {
                    name: name.to_string(),
                    pin: pin.to_string(),
                });
            }
            if pin_norm != sha256 {
                return Err(PluginError::DigestMismatch {
                    name: name.to_string(),
                    path: path.to_path_buf(),
                    expected: pin_norm,
                    actual: sha256,
                });
            }
        }
        check_component_header(name, path, &bytes)?;
        let shape_err = |source| PluginError::Shape {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        };
        // Before compiling: a nesting bomb must not reach the compiler.
        super::shape::prescan(&bytes, &super::shape::COMPONENT_CAPS).map_err(shape_err)?;

        let mut timings = LoadTimings::default();
        let t = Instant::now();
        let component = match self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &sha256))
        {
            Some(c) => {
                timings.from_cache = true;
                c
            }
            None => {
                let c = Component::new(&self.engine, &bytes).map_err(|e| PluginError::Compile {
                    name: name.to_string(),
                    path: path.to_path_buf(),
                    message: format!("{e:#}"),
                })?;
                if let Some(cache) = &self.cache
                    && let Err(e) = cache.store(&sha256, &c)
                {
                    tracing::warn!("could not cache the compiled plugin '{name}': {e}");
                }
                c
            }
        };
        timings.compile = t.elapsed();
        super::shape::check_compiled(&component, &super::shape::COMPONENT_CAPS)
            .map_err(shape_err)?;

        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let contract = exports
            .iter()
            .find_map(|e| {
                e.strip_prefix(CONNECTOR_EXPORT)
                    .and_then(|v| v.strip_prefix('@'))
            })
            .map(str::to_string)
            .ok_or_else(|| PluginError::NotAConnector {
                name: name.to_string(),
                path: path.to_path_buf(),
                exports: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            })?;
        if !contract_compatible(&contract) {
            return Err(PluginError::IncompatibleContract {
                name: name.to_string(),
                path: path.to_path_buf(),
                found: contract,
            });
        }
        let unknown: Vec<&String> = imports
            .iter()
            .filter(|i| {
                if let Some(rest) = i.strip_prefix(CONTRACT_PACKAGE) {
                    rest.split_once('@')
                        .is_none_or(|(_, v)| !contract_compatible(v))
                } else {
                    !i.starts_with("wasi:")
                }
            })
            .collect();
        if !unknown.is_empty() {
            return Err(PluginError::UnknownImports {
                name: name.to_string(),
                path: path.to_path_buf(),
                imports: unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }

        let t = Instant::now();
        let link_err = |e: wasmtime::Error| PluginError::Link {
            name: name.to_string(),
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link_err)?;
        let pre = PluginPre::new(instance_pre).map_err(link_err)?;
        timings.link = t.elapsed();

        let t = Instant::now();
        let manifest = self
            .describe(name, &pre)
            .await
            .map_err(|source| PluginError::Describe {
                name: name.to_string(),
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        timings.describe = t.elapsed();
        check_manifest(name, path, &manifest)?;

        Ok(Plugin {
            name: name.to_string(),
            path: path.to_path_buf(),
            sha256,
            size: bytes.len() as u64,
            contract,
            imports,
            exports,
            manifest,
            timings,
            pre,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions() {
        assert!(contract_compatible("0.1.0"));
        assert!(contract_compatible("0.1.7"));
        assert!(!contract_compatible("0.2.0"));
        assert!(!contract_compatible("1.1.0"));
        assert!(!contract_compatible("garbage"));
    }

    #[test]
    fn headers() {
        let p = Path::new("x.wasm");
        assert!(check_component_header("x", p, b"\0asm\x0d\x00\x01\x00").is_ok());
        let e = check_component_header("x", p, b"\0asm\x01\x00\x00\x00").unwrap_err();
        assert!(e.to_string().contains("wasm32-wasip2"), "{e}");
        let e = check_component_header("x", p, b"hello world").unwrap_err();
        assert!(e.to_string().contains("not a WebAssembly file"), "{e}");
    }

    #[test]
    fn oversized_default_mappings_refuse_the_plugin() {
        let mut e = "[x]".to_string();
        for _ in 0..6 {
            e = format!(r#"Replace({e}, "a", , , "aaaaaaaaaa", , )"#);
        }
        let mapping = |target: &str, source: &str| crate::model::Mapping {
            target: target.into(),
            source: source.into(),
            matching_precedence: None,
            apply: crate::model::ApplyOn::Always,
        };
        let mut m = Manifest {
            name: "m".into(),
            version: "0.1.0".into(),
            description: String::new(),
            vendor: String::new(),
            capabilities: vec![],
            settings: vec![],
            secrets: vec![],
            hosts: vec![],
            user_mappings: vec![mapping("userName", "[userPrincipalName]")],
            group_mappings: vec![],
        };
        check_manifest("evil", Path::new("evil.wasm"), &m).unwrap();
        m.user_mappings.push(mapping("nick\u{1b}[2Jname", &e));
        let err = check_manifest("evil", Path::new("evil.wasm"), &m).unwrap_err();
        let PluginError::DefaultMapping { target, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(target.as_deref(), Some("nick\\u{1b}[2Jname"));
        let msg = err.to_string();
        assert!(msg.starts_with("plugin 'evil' at evil.wasm is refused: its default user mapping for 'nick\\u{1b}[2Jname': Replace (column "), "{msg}");
        assert!(msg.contains("max_value_bytes"), "{msg}");
        assert!(!msg.contains('\u{1b}'), "{msg}");
    }
}
