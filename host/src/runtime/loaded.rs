//! Plugins kept loaded by a long-running process (the service), keyed by the
//! digest the configuration pins.
//!
//! The service re-reads its configuration before every cycle. A plugin whose
//! pinned digest did not change is taken from here, without touching the
//! file: replacing a `.wasm` on disk changes nothing until the operator
//! updates the pin, and then the next cycle loads (and verifies) the new
//! file. A file that no longer matches an unchanged pin is therefore never
//! an outage, and a pin that does not match the file is refused as always.

use super::{Plugin, PluginError, Runtime};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Loaded plugins by (config name, pinned sha256), sharing one [`Runtime`].
pub struct LoadedPlugins {
    runtime: Runtime,
    loaded: tokio::sync::Mutex<HashMap<(String, String), Arc<Plugin>>>,
}

impl LoadedPlugins {
    /// An empty set over `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        LoadedPlugins {
            runtime,
            loaded: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The shared runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The plugin `name` pinned to `pin`: the one already loaded with that
    /// pin, or loaded (and verified against the pin) from `path` now.
    pub async fn get(
        &self,
        name: &str,
        path: &Path,
        pin: &str,
    ) -> Result<Arc<Plugin>, PluginError> {
        let key = (name.to_string(), pin.trim().to_ascii_lowercase());
        let mut loaded = self.loaded.lock().await;
        if let Some(p) = loaded.get(&key) {
            return Ok(p.clone());
        }
        let plugin = Arc::new(self.runtime.load_plugin(name, path, Some(pin)).await?);
        // Keep only the current version of each plugin name.
        loaded.retain(|(n, _), _| n != name);
        tracing::info!(plugin = %name, sha256 = %plugin.sha256, "plugin loaded");
        loaded.insert(key, plugin.clone());
        Ok(plugin)
    }
}
