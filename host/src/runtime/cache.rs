//! The on-disk cache of precompiled plugins.
//!
//! Compiling a component with Cranelift takes far longer than loading it, so
//! the host keeps each compiled artifact in `<state_dir>/cache/`, keyed by the
//! plugin's sha256 and the engine's compatibility hash (a different wasmtime
//! version or engine configuration never picks up a stale artifact).
//!
//! Deserialising a precompiled artifact is `unsafe`: wasmtime trusts it to be
//! machine code it produced. So the host only loads artifacts it wrote itself:
//! each file ends with an HMAC-SHA256 over the key and the contents, computed
//! with a random key kept in the cache directory (mode 0600). An artifact that
//! fails the check is deleted and the plugin recompiled.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;
const MAC_LEN: usize = 32;

/// A cache directory.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: Vec<u8>,
    engine_hash: String,
}

/// Failures of the cache (each is logged and the plugin compiled instead).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// File system trouble.
    #[error(
        "plugin cache {path}: {source}; the cache lives in the state directory: check that it \
         is writable by this user (or set [runtime] state_dir)"
    )]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

struct ShaHasher(Sha256);
impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A stable hex digest of the engine's compatibility hash.
pub fn engine_hash(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..12])
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ArtifactCache {
    /// Open (creating if needed) a cache directory.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(dir))?;
        }
        let key_path = dir.join("artifact.key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k,
            _ => {
                let key: [u8; 32] = rand::random();
                write_private(&key_path, &key)?;
                key.to_vec()
            }
        };
        Ok(ArtifactCache {
            dir: dir.to_path_buf(),
            key,
            engine_hash: engine_hash(engine),
        })
    }

    fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}.cwasm", self.engine_hash))
    }

    fn mac(&self, sha256: &str, data: &[u8]) -> Vec<u8> {
        // `new_from_slice` accepts any key length for HMAC.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return vec![0; MAC_LEN],
        };
        mac.update(sha256.as_bytes());
        mac.update(self.engine_hash.as_bytes());
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// Load the artifact for `sha256`, if a valid one is cached.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path_for(sha256);
        let bytes = std::fs::read(&path).ok()?;
        if bytes.len() < MAC_LEN {
            self.discard(&path, "truncated");
            return None;
        }
        let (data, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(sha256.as_bytes());
        mac.update(self.engine_hash.as_bytes());
        mac.update(data);
        if mac.verify_slice(tag).is_err() {
            self.discard(
                &path,
                "its authentication tag does not match (not written by this host)",
            );
            return None;
        }
        // SAFETY: the bytes were produced by `Component::serialize` on an engine
        // with the same compatibility hash and written by this host: the HMAC
        // with our private key proves it. wasmtime additionally validates the
        // artifact header against the engine.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, data) };
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                self.discard(&path, &format!("wasmtime refused it: {e}"));
                None
            }
        }
    }

    /// Store the artifact of a freshly compiled component.
    pub fn store(&self, sha256: &str, component: &Component) -> Result<(), CacheError> {
        let path = self.path_for(sha256);
        let mut data = component.serialize().map_err(|e| CacheError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let tag = self.mac(sha256, &data);
        data.extend_from_slice(&tag);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, &data)?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    fn discard(&self, path: &Path, why: &str) {
        tracing::warn!(path = %path.display(), "discarding cached plugin artifact: {why}");
        let _ = std::fs::remove_file(path);
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), CacheError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(data).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}
