//! Group commit: many store writes, one sync to disk.
//!
//! With `synchronous=FULL` every commit waits for the disk (one `fsync` of the
//! WAL, milliseconds on a busy virtual disk). A cycle that committed each
//! intent, each result and each log record on its own spent most of its time
//! in `fsync`. [`GroupCommit`] queues writes and runs every queued write in
//! **one** transaction ([`GroupCommit::flush`]); each write keeps its own
//! all-or-nothing savepoint inside it, so one write failing does not undo the
//! others.
//!
//! The crash-safety protocol is unchanged, because nothing waits for a queued
//! write that must be durable before it is used:
//!
//! - [`GroupCommit::durable`] queues a write and resolves only once a flush
//!   that included it has **committed**. The executor begins an intent this
//!   way, so the intent is on disk before the connector is called, exactly
//!   as with [`Store::begin_intent`]; a completion is awaited this way too, so
//!   its error (if any) is seen where it was before.
//! - [`GroupCommit::later`] queues a write nobody waits for (escrow changes,
//!   the log records of objects whose target was not written). A crash may
//!   lose the queued ones; nothing is lost that the next cycle does not redo.
//!   The log record of a target write is not queued this way: the executor
//!   commits it in the same durable write as the write's completion.
//!
//! Batching comes from concurrency: a `durable` caller yields once before it
//! flushes, so the other connector calls of the cycle that are ready at that
//! moment queue their writes into the same transaction. A transaction is never
//! held across an await: a flush begins, writes and commits synchronously.

use super::{Store, StoreError};
use std::sync::{Arc, Mutex, MutexGuard};

type Op<'s> = Box<dyn FnOnce(&Store) + Send + 's>;

#[derive(Default)]
struct Queue<'s> {
    ops: Vec<Op<'s>>,
    /// Flushes done so far; queued ops run in flush number `flushed + 1`.
    flushed: u64,
    /// Flushes whose commit failed, with the error.
    failed: Vec<(u64, String)>,
}

/// Queues writes to a [`Store`] and commits them together; see the
/// [module docs](self).
pub struct GroupCommit<'s> {
    store: &'s Store,
    queue: Mutex<Queue<'s>>,
}

impl std::fmt::Debug for GroupCommit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<'s> GroupCommit<'s> {
    /// Group commits over `store`.
    pub fn new(store: &'s Store) -> Self {
        GroupCommit {
            store,
            queue: Mutex::new(Queue::default()),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue<'s>> {
        // The queue is consistent between statements: take over a poisoned lock.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The store written to.
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// Queue a write nobody waits for; it is committed with the next flush.
    pub fn later(&self, op: impl FnOnce(&Store) + Send + 's) {
        self.queue().ops.push(Box::new(op));
    }

    /// Queue a write and wait until it is committed (with whatever else is
    /// queued by then); its result, or the commit's error.
    pub async fn durable<R: Send + 's>(
        &self,
        op: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 's,
    ) -> Result<R, StoreError> {
        let slot: Arc<Mutex<Option<Result<R, StoreError>>>> = Arc::new(Mutex::new(None));
        let ticket = {
            let mut q = self.queue();
            let out = slot.clone();
            q.ops.push(Box::new(move |s| {
                let r = op(s);
                if let Ok(mut o) = out.lock() {
                    *o = Some(r);
                }
            }));
            q.flushed + 1
        };
        // Let the other ready calls of the cycle queue their writes too.
        tokio::task::yield_now().await;
        if self.queue().flushed < ticket {
            let _ = self.flush();
        }
        let failed = self
            .queue()
            .failed
            .iter()
            .find(|(n, _)| *n == ticket)
            .map(|(_, e)| e.clone());
        if let Some(e) = failed {
            return Err(StoreError::GroupCommit(e));
        }
        let r = slot.lock().ok().and_then(|mut o| o.take());
        r.unwrap_or_else(|| Err(StoreError::GroupCommit("the write did not run".into())))
    }

    /// Run every queued write in one transaction and commit it. Returns the
    /// commit's error, if any (then none of the queued writes is kept).
    pub fn flush(&self) -> Result<(), StoreError> {
        let (ops, number) = {
            let mut q = self.queue();
            q.flushed += 1;
            (std::mem::take(&mut q.ops), q.flushed)
        };
        if ops.is_empty() {
            return Ok(());
        }
        let result = if ops.len() == 1 {
            // Alone: the write's own transaction is the commit.
            ops.into_iter().for_each(|op| op(self.store));
            Ok(())
        } else {
            match self.store.begin_group() {
                Ok(()) => {
                    for op in ops {
                        op(self.store);
                    }
                    self.store.end_group()
                }
                Err(e) => {
                    // No group (e.g. another process held the write lock
                    // past the busy timeout): each write on its own, as
                    // without group commit.
                    tracing::warn!(
                        "state store: cannot open a group commit ({e}); committing one by one"
                    );
                    ops.into_iter().for_each(|op| op(self.store));
                    Ok(())
                }
            }
        };
        if let Err(e) = &result {
            tracing::error!("state store: a group commit failed: {e}");
            self.queue().failed.push((number, e.to_string()));
        }
        result
    }
}

impl Drop for GroupCommit<'_> {
    fn drop(&mut self) {
        // Queued writes nobody waited for (log records) are not dropped.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKind;
    use crate::store::{IntentAction, IntentId};

    fn intent(
        s: &Store,
        source_id: &str,
    ) -> Result<crate::store::IntentId, crate::store::StoreError> {
        s.begin_intent(
            "c",
            ObjectKind::User,
            source_id,
            IntentAction::Create,
            &serde_json::json!({}),
        )
    }

    #[tokio::test]
    async fn durable_writes_are_on_disk_when_awaited_and_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        let group = GroupCommit::new(&store);
        // A write that fails, queued in the same group as two that succeed.
        group.later(|s| {
            assert!(s.complete_delete(IntentId(999)).is_err());
        });
        let (a, b) = futures::join!(
            group.durable(|s| intent(s, "u1")),
            group.durable(|s| intent(s, "u2"))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a, b);
        // Committed: another connection to the file sees both intents.
        let other = Store::open(&path).unwrap();
        let pending = other.pending_intents("c").unwrap();
        assert_eq!(pending.len(), 2, "{pending:?}");
        // A second intent for u1 is refused, and only it.
        let again = group.durable(|s| intent(s, "u1")).await;
        assert!(
            matches!(again, Err(StoreError::IntentPending { .. })),
            "{again:?}"
        );
        let u3 = group.durable(|s| intent(s, "u3")).await;
        assert!(u3.is_ok());
        assert_eq!(other.pending_intents("c").unwrap().len(), 3);
    }

    #[test]
    fn queued_writes_are_committed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        {
            let group = GroupCommit::new(&store);
            group.later(|s| {
                let _ = intent(s, "u1");
            });
            group.later(|s| {
                let _ = intent(s, "u2");
            });
        }
        let other = Store::open(&path).unwrap();
        assert_eq!(other.pending_intents("c").unwrap().len(), 2);
    }
}
