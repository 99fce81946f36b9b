//! Leases: one writer per connection.
//!
//! Two processes working on one connection's state at once race (a second
//! `provisio sync` took the first one's in-flight intents for crash
//! leftovers and abandoned them; `sync` beside `provisio run` sent duplicate
//! creates). Whatever writes a connection's state and its target — a cycle,
//! provisioning on demand — first takes the connection's **lease** here.
//!
//! A lease row names its holder (a random owner id per acquisition, the
//! process id, host name and command), when it was taken, the last
//! heartbeat and when it expires. The holder renews it every
//! [`LEASE_TTL`]` / 3` ([`crate::lease`] runs the heartbeat); a process that
//! dies stops renewing and the lease expires. A lease is taken over before
//! it expires only when its holder is provably gone: the same host name and
//! no process with its pid (a `kill -9` followed by a restart does not wait
//! out the expiry).
//!
//! Every acquisition increments the row's **fencing token**. Renewal and
//! release name the token, so a holder that lost its lease (paused past the
//! expiry, taken over) learns so at its next renewal and stops; the
//! executor's writes check the token too ([`Store::check_fence`]). The same
//! row, token and expiry carry over unchanged to a shared store with several
//! nodes: acquisition is one conditional write, and nothing relies on
//! SQLite's file lock.
//!
//! Intents are resumed only by the lease's holder: whoever holds the lease
//! knows the previous holder's lease expired or was released, so its pending
//! intents are leftovers of a crash, not writes in flight.

use super::{Store, StoreError, format_time, parse_time, sql};
use rusqlite::{OptionalExtension, TransactionBehavior};
use std::time::{Duration, SystemTime};

/// How long a lease lives without a heartbeat.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// Who asks for (or holds) a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// Random id of this acquisition.
    pub owner: String,
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// The command, e.g. `provisio sync`.
    pub command: String,
}

impl LeaseHolder {
    /// This process, running `command`, with a fresh owner id.
    pub fn this_process(command: impl Into<String>) -> Self {
        LeaseHolder {
            owner: uuid::Uuid::new_v4().to_string(),
            pid: std::process::id(),
            host: host_name(),
            command: command.into(),
        }
    }
}

/// A lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The connection.
    pub connection: String,
    /// The holder.
    pub holder: LeaseHolder,
    /// The fencing token: incremented by every acquisition.
    pub fence: i64,
    /// When it was taken (RFC 3339 UTC).
    pub started_at: String,
    /// The last heartbeat.
    pub heartbeat_at: String,
    /// When it expires without another heartbeat.
    pub expires_at: String,
}

/// Why a lease was not granted or was lost.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another holder has the lease.
    #[error(
        "connection '{connection}' is being worked on by `{command}` (pid {pid} on host {host}) \
         since {since}; its lease expires at {expires_at} unless renewed. Wait for it to \
         finish, or stop that process"
    )]
    Held {
        /// The connection.
        connection: String,
        /// The holder's command.
        command: String,
        /// The holder's pid.
        pid: u32,
        /// The holder's host.
        host: String,
        /// When the holder took it.
        since: String,
        /// When it expires.
        expires_at: String,
    },
    /// The store failed, or this process's lease was lost
    /// ([`StoreError::LeaseLost`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This machine's host name (Linux `/proc/sys/kernel/hostname`, then
/// `$HOSTNAME`), or `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whether a process with `pid` runs on this machine (Linux: `/proc/<pid>`).
/// Where that cannot be told, assume it does.
fn process_alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        connection: row.get(0)?,
        holder: LeaseHolder {
            owner: row.get(1)?,
            pid: row.get::<_, i64>(2)?.try_into().unwrap_or(0),
            host: row.get(3)?,
            command: row.get(4)?,
        },
        fence: row.get(5)?,
        started_at: row.get(6)?,
        heartbeat_at: row.get(7)?,
        expires_at: row.get(8)?,
    })
}

const COLUMNS: &str =
    "connection, owner, pid, host, command, fence, started_at, heartbeat_at, expires_at";

impl Store {
    /// The live (unexpired, unreleased) lease on `connection`, if any.
    pub fn lease(&self, connection: &str) -> Result<Option<Lease>, StoreError> {
        let now = SystemTime::now();
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM leases WHERE connection = ?1"),
                [connection],
                lease_from_row,
            )
            .optional()
            .map_err(sql("lease", "leases"))?
            .filter(|l| parse_time(&l.expires_at).is_some_and(|e| e > now)))
    }

    /// Take the lease on `connection` for `holder`, for `ttl`: granted when
    /// no lease is held, when the held one has expired, or when its holder
    /// is gone (same host, no such process). Increments the fencing token.
    pub fn acquire_lease(
        &self,
        connection: &str,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<Lease, LeaseError> {
        const OP: &str = "acquire_lease";
        let now = SystemTime::now();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(OP, "leases"))?;
        let current = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM leases WHERE connection = ?1"),
                [connection],
                lease_from_row,
            )
            .optional()
            .map_err(sql(OP, "leases"))?;
        let fence = match &current {
            Some(l) => {
                let live = parse_time(&l.expires_at).is_some_and(|e| e > now);
                let gone = l.holder.host == holder.host && !process_alive(l.holder.pid);
                if live && !gone {
                    return Err(LeaseError::Held {
                        connection: connection.to_string(),
                        command: l.holder.command.clone(),
                        pid: l.holder.pid,
                        host: l.holder.host.clone(),
                        since: l.started_at.clone(),
                        expires_at: l.expires_at.clone(),
                    });
                }
                l.fence + 1
            }
            None => 1,
        };
        let lease = Lease {
            connection: connection.to_string(),
            holder: holder.clone(),
            fence,
            started_at: format_time(now),
            heartbeat_at: format_time(now),
            expires_at: format_time(now + ttl),
        };
        tx.execute(
            &format!(
                "INSERT INTO leases ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (connection) DO UPDATE SET owner = excluded.owner,
                   pid = excluded.pid, host = excluded.host, command = excluded.command,
                   fence = excluded.fence, started_at = excluded.started_at,
                   heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at"
            ),
            rusqlite::params![
                lease.connection,
                lease.holder.owner,
                i64::from(lease.holder.pid),
                lease.holder.host,
                lease.holder.command,
                lease.fence,
                lease.started_at,
                lease.heartbeat_at,
                lease.expires_at,
            ],
        )
        .map_err(sql(OP, "leases"))?;
        tx.commit().map_err(sql(OP, "leases"))?;
        Ok(lease)
    }

    /// Extend a held lease by `ttl` from now; [`StoreError::LeaseLost`]
    /// when it is no longer this holder's (token and owner must both match).
    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<String, StoreError> {
        let now = SystemTime::now();
        let expires = format_time(now + ttl);
        let n = self
            .lock()
            .execute(
                "UPDATE leases SET heartbeat_at = ?1, expires_at = ?2
                 WHERE connection = ?3 AND owner = ?4 AND fence = ?5 AND expires_at > ?1",
                rusqlite::params![
                    format_time(now),
                    expires,
                    lease.connection,
                    lease.holder.owner,
                    lease.fence
                ],
            )
            .map_err(sql("renew_lease", "leases"))?;
        if n == 1 {
            Ok(expires)
        } else {
            Err(StoreError::LeaseLost {
                connection: lease.connection.clone(),
                fence: lease.fence,
            })
        }
    }

    /// Give a held lease up (nothing happens if it is no longer ours). The
    /// row stays, expired, so that the fencing token keeps counting up.
    pub fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let now = format_time(SystemTime::now());
        self.lock()
            .execute(
                "UPDATE leases SET expires_at = ?4, heartbeat_at = ?4
                 WHERE connection = ?1 AND owner = ?2 AND fence = ?3",
                rusqlite::params![lease.connection, lease.holder.owner, lease.fence, now],
            )
            .map(drop)
            .map_err(sql("release_lease", "leases"))
    }

    /// Whether `lease` is still the connection's current, unexpired lease.
    /// The executor checks this before every write it begins, so a process
    /// that lost its lease writes nothing more.
    pub fn check_fence(&self, lease: &Lease) -> Result<(), StoreError> {
        match self.lease(&lease.connection)? {
            Some(l) if l.holder.owner == lease.holder.owner && l.fence == lease.fence => Ok(()),
            _ => Err(StoreError::LeaseLost {
                connection: lease.connection.clone(),
                fence: lease.fence,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(command: &str) -> LeaseHolder {
        LeaseHolder::this_process(command)
    }

    #[test]
    fn one_holder_at_a_time_with_a_clear_refusal() {
        let s = Store::open_in_memory().unwrap();
        let a = holder("provisio run");
        let lease = s.acquire_lease("t", &a, LEASE_TTL).unwrap();
        assert_eq!(lease.fence, 1);
        let e = s
            .acquire_lease("t", &holder("provisio sync"), LEASE_TTL)
            .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, LeaseError::Held { .. }), "{m}");
        assert!(
            m.contains("being worked on by `provisio run`")
                && m.contains(&format!("pid {}", std::process::id()))
                && m.contains(&host_name()),
            "{m}"
        );
        // Another connection is independent.
        assert!(s.acquire_lease("u", &holder("x"), LEASE_TTL).is_ok());
        s.release_lease(&lease).unwrap();
        let again = s
            .acquire_lease("t", &holder("provisio sync"), LEASE_TTL)
            .unwrap();
        assert_eq!(again.fence, 2, "every acquisition fences the previous");
        assert!(s.check_fence(&again).is_ok());
        assert!(matches!(
            s.check_fence(&lease),
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            s.renew_lease(&lease, LEASE_TTL),
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(s.renew_lease(&again, LEASE_TTL).is_ok());
        // Releasing a lost lease does not release the current one.
        s.release_lease(&lease).unwrap();
        assert!(s.check_fence(&again).is_ok());
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_its_holder_learns_it() {
        let s = Store::open_in_memory().unwrap();
        let old = s
            .acquire_lease("t", &holder("provisio sync"), Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(
            s.check_fence(&old),
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            s.renew_lease(&old, LEASE_TTL),
            Err(StoreError::LeaseLost { .. })
        ));
        let new = s
            .acquire_lease("t", &holder("provisio run"), LEASE_TTL)
            .unwrap();
        assert_eq!(new.fence, old.fence + 1);
    }

    #[test]
    fn a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once() {
        let s = Store::open_in_memory().unwrap();
        let mut dead = holder("provisio sync");
        // A pid beyond Linux's pid_max: no such process.
        dead.pid = 4_194_305;
        s.acquire_lease("t", &dead, LEASE_TTL).unwrap();
        assert!(
            s.acquire_lease("t", &holder("provisio sync"), LEASE_TTL)
                .is_ok()
        );
        // On another host the same pid proves nothing: wait for the expiry.
        let mut elsewhere = holder("provisio run");
        elsewhere.host = "another-node".into();
        elsewhere.pid = 4_194_305;
        s.acquire_lease("u", &elsewhere, LEASE_TTL).unwrap();
        assert!(matches!(
            s.acquire_lease("u", &holder("provisio sync"), LEASE_TTL),
            Err(LeaseError::Held { .. })
        ));
    }
}
