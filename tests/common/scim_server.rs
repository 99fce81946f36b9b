//! Running the independent SCIM 2.0 server `scim2-server` (PyPI, installed in
//! `.venv-scim` by `scripts/setup.sh`) on a free loopback port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running scim2-server, killed on drop.
pub struct ScimServer {
    child: Child,
    pub port: u16,
    pub token: String,
}

impl ScimServer {
    /// Base URL of the SCIM API.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }
    /// Origin, for grants.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    /// GET `path` (under the base URL) directly, with the server's token —
    /// not through any proxy a test put in front — as JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let o = Command::new("curl")
            .args(["-sf", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("{}{path}", self.base_url()))
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("GET {path} from scim2-server: {e}"))
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start scim2-server with a bearer token; waits until it accepts connections.
pub fn start(token: &str) -> ScimServer {
    let exe = std::env::var("PROVISIO_SCIM2_SERVER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| crate::common::workspace().join(".venv-scim/bin/scim2-server"));
    assert!(
        exe.exists(),
        "{} is missing: run `scripts/setup.sh` (it installs scim2-server==0.8.3 into .venv-scim)",
        exe.display()
    );
    for _attempt in 0..5 {
        let port = free_port();
        let child = Command::new(&exe)
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                token,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scim2-server");
        let mut server = ScimServer {
            child,
            port,
            token: token.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                break; // port taken or crash: try another port
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = server.child.kill();
    }
    panic!("scim2-server did not start");
}
