//! Holding a connection's lease while working on it (see
//! [`crate::store::leases`] for the lease itself).
//!
//! [`hold`] takes the lease, runs the work while a heartbeat renews the lease
//! every third of [`LEASE_TTL`] in the same task, and releases it when the
//! work ends — also when the work's future is dropped (a cancelled cycle).
//! If a renewal finds the lease lost, the heartbeat stops and the work goes
//! on only until its next write: the executor checks the fencing token
//! before every intent ([`crate::store::Store::check_fence`]), so a process
//! that lost its lease sends nothing more to the target.
//!
//! The command recorded with a lease ("`provisio sync`", "`provisio run`")
//! is set once per process by the CLI ([`set_command`]).

use crate::store::{LEASE_TTL, Lease, LeaseError, LeaseHolder, Store};
use std::future::Future;
use std::sync::OnceLock;

static COMMAND: OnceLock<String> = OnceLock::new();

/// Name the command this process runs (shown to a process refused a lease).
pub fn set_command(command: impl Into<String>) {
    let _ = COMMAND.set(command.into());
}

/// The command set with [`set_command`], or `provisio`.
pub fn command() -> String {
    COMMAND
        .get()
        .cloned()
        .unwrap_or_else(|| "provisio".to_string())
}

/// Releases the lease when dropped.
struct Release<'s> {
    store: &'s Store,
    lease: Lease,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.store.release_lease(&self.lease) {
            tracing::warn!(connection = %self.lease.connection, "cannot release the lease: {e}");
        }
    }
}

/// Take `connection`'s lease for a short change that does not wait on
/// anything (a restart, a staged decision) and release it afterwards: such a
/// change must not land while another process's cycle works on the
/// connection, or that cycle would act on state changed under it.
/// Refused with [`LeaseError::Held`] when another process holds the lease.
pub fn with_lease<T>(
    store: &Store,
    connection: &str,
    change: impl FnOnce() -> Result<T, crate::store::StoreError>,
) -> Result<T, LeaseError> {
    let holder = LeaseHolder::this_process(command());
    let lease = store.acquire_lease(connection, &holder, LEASE_TTL)?;
    let _release = Release { store, lease };
    Ok(change()?)
}

/// Take `connection`'s lease and run `work` with it (see the module docs).
/// Refused with [`LeaseError::Held`] when another process holds it.
pub async fn hold<F, T>(
    store: &Store,
    connection: &str,
    work: impl FnOnce(Lease) -> F,
) -> Result<T, LeaseError>
where
    F: Future<Output = T>,
{
    let holder = LeaseHolder::this_process(command());
    let lease = store.acquire_lease(connection, &holder, LEASE_TTL)?;
    let _release = Release {
        store,
        lease: lease.clone(),
    };
    let heartbeat = async {
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            if let Err(e) = store.renew_lease(&lease, LEASE_TTL) {
                tracing::error!(connection, "{e}");
                return;
            }
        }
    };
    let work = work(lease.clone());
    tokio::pin!(work);
    tokio::pin!(heartbeat);
    let out = tokio::select! {
        out = &mut work => out,
        () = &mut heartbeat => work.await,
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_is_refused_while_the_work_runs_and_not_after() {
        let store = Store::open_in_memory().unwrap();
        let s = &store;
        let inner = hold(s, "t", |lease| async move {
            assert!(s.check_fence(&lease).is_ok());
            let second = hold(s, "t", |_| async {}).await;
            match second {
                Err(LeaseError::Held { .. }) => {}
                other => panic!("a second holder got in: {other:?}"),
            }
            7
        })
        .await
        .unwrap();
        assert_eq!(inner, 7);
        assert!(store.lease("t").unwrap().is_none(), "released");
        assert!(hold(&store, "t", |_| async {}).await.is_ok());
    }

    #[tokio::test]
    async fn a_short_change_is_refused_while_a_cycle_holds_the_lease() {
        let store = Store::open_in_memory().unwrap();
        let s = &store;
        hold(s, "t", |_| async move {
            let r = with_lease(s, "t", || Ok(1));
            assert!(matches!(r, Err(LeaseError::Held { .. })), "{r:?}");
        })
        .await
        .unwrap();
        assert_eq!(with_lease(&store, "t", || Ok(2)).unwrap(), 2);
        assert!(
            store.lease("t").unwrap().is_none(),
            "released after the change"
        );
    }

    #[tokio::test]
    async fn a_dropped_work_releases_its_lease() {
        let store = Store::open_in_memory().unwrap();
        {
            let fut = hold(&store, "t", |_| std::future::pending::<()>());
            let _ = tokio::time::timeout(std::time::Duration::from_millis(10), fut).await;
        }
        assert!(store.lease("t").unwrap().is_none());
    }
}
