//! Links (source object -> target object) and exported group memberships.

use super::kinds::{json_column, text_enum, to_json_text};
use super::{Store, StoreError, now, sql, write_tx};
use crate::model::ObjectKind;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet};

text_enum! {
    /// The state of a linked object in the target, as Provisio left it.
    pub enum LinkState {
        /// Provisioned and enabled.
        Active => "active",
        /// Disabled (e.g. SCIM `active=false`).
        Disabled => "disabled",
        /// Deleted in the target; the row stays as a tombstone.
        Deleted => "deleted",
    }
}

/// What Provisio knows about one provisioned object.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// The connection (source directory -> target app).
    pub connection: String,
    /// User or group.
    pub kind: ObjectKind,
    /// The object's id in the source.
    pub source_id: String,
    /// The object's id in the target.
    pub target_id: String,
    /// A digest of the source object's mapped attributes when last exported;
    /// unchanged means nothing to update.
    pub fingerprint: String,
    /// The attributes last exported to the target, by target attribute name.
    pub exported: BTreeMap<String, serde_json::Value>,
    /// Active, disabled or deleted.
    pub state: LinkState,
    /// When the row was last written (RFC 3339 UTC); set by the store on
    /// every write, the value passed in is ignored.
    pub updated_at: String,
}

impl Link {
    /// A new active link with no exported attributes and `updated_at` unset.
    pub fn new(
        connection: impl Into<String>,
        kind: ObjectKind,
        source_id: impl Into<String>,
        target_id: impl Into<String>,
    ) -> Self {
        Link {
            connection: connection.into(),
            kind,
            source_id: source_id.into(),
            target_id: target_id.into(),
            fingerprint: String::new(),
            exported: BTreeMap::new(),
            state: LinkState::Active,
            updated_at: String::new(),
        }
    }
}

const LINK_COLUMNS: &str =
    "connection, kind, source_id, target_id, fingerprint, exported, state, updated_at";

fn link_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        connection: row.get(0)?,
        kind: row.get(1)?,
        source_id: row.get(2)?,
        target_id: row.get(3)?,
        fingerprint: row.get(4)?,
        exported: json_column(row, 5)?,
        state: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// Insert or replace a link (shared with the intent completions).
pub(super) fn write_link(
    conn: &Connection,
    op: &'static str,
    link: &Link,
) -> Result<(), StoreError> {
    let exported = to_json_text(&link.exported, op, "links", "exported")?;
    conn.execute(
        "INSERT INTO links (connection, kind, source_id, target_id, fingerprint, exported, state, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (connection, kind, source_id) DO UPDATE SET
             target_id = excluded.target_id, fingerprint = excluded.fingerprint,
             exported = excluded.exported, state = excluded.state, updated_at = excluded.updated_at",
        params![
            link.connection,
            link.kind,
            link.source_id,
            link.target_id,
            link.fingerprint,
            exported,
            link.state,
            now()
        ],
    )
    .map_err(sql(op, "links"))?;
    Ok(())
}

/// Set a link's state; `false` when there is no link.
pub(super) fn write_link_state(
    conn: &Connection,
    op: &'static str,
    connection: &str,
    kind: ObjectKind,
    source_id: &str,
    state: LinkState,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "UPDATE links SET state = ?4, updated_at = ?5
             WHERE connection = ?1 AND kind = ?2 AND source_id = ?3",
            params![connection, kind, source_id, state, now()],
        )
        .map_err(sql(op, "links"))?;
    Ok(n > 0)
}

/// Forget the memberships that involve an object whose target object is
/// gone: a group's exported members, or a user's place in groups.
pub(super) fn forget_memberships(
    conn: &Connection,
    op: &'static str,
    connection: &str,
    kind: ObjectKind,
    source_id: &str,
) -> Result<(), StoreError> {
    let query = match kind {
        ObjectKind::Group => {
            "DELETE FROM memberships WHERE connection = ?1 AND group_source_id = ?2"
        }
        ObjectKind::User => {
            "DELETE FROM memberships WHERE connection = ?1 AND member_source_id = ?2"
        }
    };
    conn.execute(query, params![connection, source_id])
        .map_err(sql(op, "memberships"))?;
    Ok(())
}

/// Record members as added to or removed from a group.
pub(super) fn write_members<S: AsRef<str>>(
    conn: &Connection,
    op: &'static str,
    connection: &str,
    group: &str,
    added: &[S],
    removed: &[S],
) -> Result<(), StoreError> {
    let mut add = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO memberships (connection, group_source_id, member_source_id)
             VALUES (?1, ?2, ?3)",
        )
        .map_err(sql(op, "memberships"))?;
    for m in added {
        add.execute(params![connection, group, m.as_ref()])
            .map_err(sql(op, "memberships"))?;
    }
    let mut remove = conn
        .prepare_cached(
            "DELETE FROM memberships
             WHERE connection = ?1 AND group_source_id = ?2 AND member_source_id = ?3",
        )
        .map_err(sql(op, "memberships"))?;
    for m in removed {
        remove
            .execute(params![connection, group, m.as_ref()])
            .map_err(sql(op, "memberships"))?;
    }
    Ok(())
}

impl Store {
    /// The link of one source object, if it was ever provisioned.
    pub fn link(
        &self,
        connection: &str,
        kind: ObjectKind,
        source_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {LINK_COLUMNS} FROM links
                     WHERE connection = ?1 AND kind = ?2 AND source_id = ?3"
                ),
                params![connection, kind, source_id],
                link_from_row,
            )
            .optional()
            .map_err(sql("link", "links"))
    }

    /// All links of one kind for a connection, by source id.
    pub fn links(&self, connection: &str, kind: ObjectKind) -> Result<Vec<Link>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {LINK_COLUMNS} FROM links
                 WHERE connection = ?1 AND kind = ?2 ORDER BY source_id"
            ))
            .map_err(sql("links", "links"))?;
        stmt.query_map(params![connection, kind], link_from_row)
            .and_then(Iterator::collect)
            .map_err(sql("links", "links"))
    }

    /// The link pointing at a target object. Should several source objects
    /// point at it (e.g. a tombstone and a newer link), a live one wins over a
    /// deleted one, then the most recently written.
    pub fn link_by_target(
        &self,
        connection: &str,
        kind: ObjectKind,
        target_id: &str,
    ) -> Result<Option<Link>, StoreError> {
        self.lock()
            .query_row(
                &format!(
                    "SELECT {LINK_COLUMNS} FROM links
                     WHERE connection = ?1 AND kind = ?2 AND target_id = ?3
                     ORDER BY state = 'deleted', updated_at DESC LIMIT 1"
                ),
                params![connection, kind, target_id],
                link_from_row,
            )
            .optional()
            .map_err(sql("link_by_target", "links"))
    }

    /// Insert or replace a link outside the intent protocol (e.g. when
    /// matching finds an existing target object and nothing is written to the
    /// target). `updated_at` is set to now.
    pub fn upsert_link(&self, link: &Link) -> Result<(), StoreError> {
        write_link(&self.lock(), "upsert_link", link)
    }

    /// Change a link's state; returns `false` if there is no such link.
    pub fn set_link_state(
        &self,
        connection: &str,
        kind: ObjectKind,
        source_id: &str,
        state: LinkState,
    ) -> Result<bool, StoreError> {
        write_link_state(
            &self.lock(),
            "set_link_state",
            connection,
            kind,
            source_id,
            state,
        )
    }

    /// Forget a link entirely (and the memberships it was part of); returns
    /// `false` if there was none. The next cycle will match the object again.
    pub fn remove_link(
        &self,
        connection: &str,
        kind: ObjectKind,
        source_id: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "remove_link", "links")?;
        let n = tx
            .execute(
                "DELETE FROM links WHERE connection = ?1 AND kind = ?2 AND source_id = ?3",
                params![connection, kind, source_id],
            )
            .map_err(sql("remove_link", "links"))?;
        forget_memberships(&tx, "remove_link", connection, kind, source_id)?;
        tx.commit().map_err(sql("remove_link (commit)", "links"))?;
        Ok(n > 0)
    }

    /// The source ids of the members last exported to a group.
    pub fn members(
        &self,
        connection: &str,
        group_source_id: &str,
    ) -> Result<BTreeSet<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT member_source_id FROM memberships
                 WHERE connection = ?1 AND group_source_id = ?2",
            )
            .map_err(sql("members", "memberships"))?;
        stmt.query_map(params![connection, group_source_id], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(sql("members", "memberships"))
    }

    /// Make the recorded members of a group exactly `members` (source ids):
    /// drift reconciliation and a re-matched group record what the target
    /// really holds, so the next membership diff adds only what is missing
    /// and removes only what is extra.
    pub fn replace_members(
        &self,
        connection: &str,
        group_source_id: &str,
        members: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let current = self.members(connection, group_source_id)?;
        let added: Vec<&String> = members.difference(&current).collect();
        let removed: Vec<&String> = current.difference(members).collect();
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "replace_members", "memberships")?;
        write_members(
            &tx,
            "replace_members",
            connection,
            group_source_id,
            &added,
            &removed,
        )?;
        tx.commit()
            .map_err(sql("replace_members (commit)", "memberships"))
    }

    /// Forget every recorded membership of an object: of a group, its
    /// members; of a user, the groups it was exported to (the object was
    /// found deleted in the target and will be created again).
    pub fn forget_memberships(
        &self,
        connection: &str,
        kind: ObjectKind,
        source_id: &str,
    ) -> Result<(), StoreError> {
        forget_memberships(
            &self.lock(),
            "forget_memberships",
            connection,
            kind,
            source_id,
        )
    }

    /// Record members as exported to a group (already present ones are kept).
    pub fn set_members_added<S: AsRef<str>>(
        &self,
        connection: &str,
        group_source_id: &str,
        members: &[S],
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "set_members_added", "memberships")?;
        write_members(
            &tx,
            "set_members_added",
            connection,
            group_source_id,
            members,
            &[],
        )?;
        tx.commit()
            .map_err(sql("set_members_added (commit)", "memberships"))
    }

    /// Record members as removed from a group (absent ones are ignored).
    pub fn set_members_removed<S: AsRef<str>>(
        &self,
        connection: &str,
        group_source_id: &str,
        members: &[S],
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = write_tx(&mut conn, "set_members_removed", "memberships")?;
        write_members(
            &tx,
            "set_members_removed",
            connection,
            group_source_id,
            &[],
            members,
        )?;
        tx.commit()
            .map_err(sql("set_members_removed (commit)", "memberships"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(source: &str, target: &str) -> Link {
        let mut l = Link::new("c1", ObjectKind::User, source, target);
        l.fingerprint = format!("fp-{source}");
        l.exported
            .insert("userName".into(), json!(format!("{source}@x")));
        l.exported.insert("active".into(), json!(true));
        l.exported.insert("emails".into(), json!(["a@x", "b@x"]));
        l
    }

    #[test]
    fn upsert_get_list_and_replace() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.link("c1", ObjectKind::User, "u1").unwrap(), None);
        s.upsert_link(&sample("u2", "t2")).unwrap();
        s.upsert_link(&sample("u1", "t1")).unwrap();
        let got = s.link("c1", ObjectKind::User, "u1").unwrap().unwrap();
        assert_eq!(got.target_id, "t1");
        assert_eq!(got.exported, sample("u1", "t1").exported);
        assert_eq!(got.state, LinkState::Active);
        assert!(super::super::parse_time(&got.updated_at).is_some());

        let mut changed = got.clone();
        changed.fingerprint = "fp2".into();
        changed.exported.remove("emails");
        s.upsert_link(&changed).unwrap();
        let again = s.link("c1", ObjectKind::User, "u1").unwrap().unwrap();
        assert_eq!(again.fingerprint, "fp2");
        assert!(!again.exported.contains_key("emails"));

        let all = s.links("c1", ObjectKind::User).unwrap();
        assert_eq!(
            all.iter().map(|l| l.source_id.as_str()).collect::<Vec<_>>(),
            ["u1", "u2"]
        );
        // Kinds and connections are separate namespaces.
        assert!(s.links("c1", ObjectKind::Group).unwrap().is_empty());
        assert!(s.links("c2", ObjectKind::User).unwrap().is_empty());
        assert_eq!(s.link("c1", ObjectKind::Group, "u1").unwrap(), None);
    }

    #[test]
    fn by_target_prefers_live_links() {
        let s = Store::open_in_memory().unwrap();
        let mut old = sample("old", "t1");
        old.state = LinkState::Deleted;
        s.upsert_link(&old).unwrap();
        s.upsert_link(&sample("new", "t1")).unwrap();
        // Rewrite the tombstone so it is the most recent row.
        s.upsert_link(&old).unwrap();
        let got = s
            .link_by_target("c1", ObjectKind::User, "t1")
            .unwrap()
            .unwrap();
        assert_eq!(got.source_id, "new");
        assert_eq!(
            s.link_by_target("c1", ObjectKind::User, "t9").unwrap(),
            None
        );
    }

    #[test]
    fn state_changes_and_removal() {
        let s = Store::open_in_memory().unwrap();
        s.upsert_link(&sample("u1", "t1")).unwrap();
        assert!(
            s.set_link_state("c1", ObjectKind::User, "u1", LinkState::Disabled)
                .unwrap()
        );
        assert!(
            !s.set_link_state("c1", ObjectKind::User, "nope", LinkState::Disabled)
                .unwrap()
        );
        let l = s.link("c1", ObjectKind::User, "u1").unwrap().unwrap();
        assert_eq!(l.state, LinkState::Disabled);

        s.set_members_added("c1", "g1", &["u1", "u2"]).unwrap();
        assert!(s.remove_link("c1", ObjectKind::User, "u1").unwrap());
        assert!(!s.remove_link("c1", ObjectKind::User, "u1").unwrap());
        assert_eq!(s.link("c1", ObjectKind::User, "u1").unwrap(), None);
        assert_eq!(
            s.members("c1", "g1")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["u2"]
        );
    }

    #[test]
    fn memberships_add_remove_and_group_removal() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.members("c1", "g1").unwrap().is_empty());
        s.set_members_added("c1", "g1", &["a", "b", "c"]).unwrap();
        s.set_members_added("c1", "g1", &["b".to_string(), "d".to_string()])
            .unwrap();
        s.set_members_removed("c1", "g1", &["a", "zzz"]).unwrap();
        s.set_members_added("c2", "g1", &["x"]).unwrap();
        s.set_members_added("c1", "g2", &["y"]).unwrap();
        let m: Vec<_> = s.members("c1", "g1").unwrap().into_iter().collect();
        assert_eq!(m, ["b", "c", "d"]);

        let mut group = Link::new("c1", ObjectKind::Group, "g1", "tg1");
        group.fingerprint = "f".into();
        s.upsert_link(&group).unwrap();
        assert!(s.remove_link("c1", ObjectKind::Group, "g1").unwrap());
        assert!(s.members("c1", "g1").unwrap().is_empty());
        assert_eq!(s.members("c2", "g1").unwrap().len(), 1);
        assert_eq!(s.members("c1", "g2").unwrap().len(), 1);
    }
}
