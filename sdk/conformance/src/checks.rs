//! The checks. Each runs against the live connection and returns passed,
//! failed (why) or skipped (why it cannot apply), with its steps as detail.
//! Every object a check creates is registered (by id and by matching
//! attribute) for the cleanup at the end of the run.

use crate::fixtures::{self, get, same, show};
use crate::report::{Check, Report, Status};
use crate::{CHECKS, Options};
use provisio::capabilities::intercept::{Decision, Fault, Interceptor};
use provisio::mapping::{self, MappingSet};
use provisio::model::{Attribute, Capability, ConnectorError, Manifest, ObjectKind, Value};
use provisio::runtime::{CallError, Connection};
use std::collections::{BTreeMap, BTreeSet};

/// Why a check stopped early.
enum Stop {
    Fail(String),
    Skip(String),
}

type Step<T> = Result<T, Stop>;

fn fail<T>(msg: impl Into<String>) -> Step<T> {
    Err(Stop::Fail(msg.into()))
}

fn desc(e: &CallError) -> String {
    format!("[{}] {e}", e.code())
}

/// The error message for a failed operation, saying so when the connector
/// answers `unsupported` to something its manifest declares.
fn op_failed(op: &str, e: &CallError) -> Stop {
    match e {
        CallError::Connector(ConnectorError::Unsupported(_)) => Stop::Fail(format!(
            "{op} answered unsupported although the manifest declares the capability: {}",
            desc(e)
        )),
        _ => Stop::Fail(format!("{op} failed: {}", desc(e))),
    }
}

/// One run's state.
pub(crate) struct Kit {
    conn: Connection,
    interceptor: Interceptor,
    options: Options,
    prefix: String,
    manifest: Manifest,
    users: Result<MappingSet, String>,
    groups: Result<MappingSet, String>,
    next: usize,
    /// Objects created, by id.
    created: Vec<(ObjectKind, String)>,
    /// Objects possibly created (by matching attribute), found again at cleanup.
    attempted: Vec<(ObjectKind, Attribute)>,
}

impl Kit {
    pub(crate) fn new(conn: Connection, interceptor: Interceptor, options: Options) -> Self {
        let manifest = conn.plugin().manifest.clone();
        let compile =
            |m: &[provisio::model::Mapping]| mapping::compile(m, &[]).map_err(|e| e.render());
        let users = compile(&manifest.user_mappings);
        let groups = compile(&manifest.group_mappings);
        let id = uuid::Uuid::new_v4().simple().to_string();
        Kit {
            conn,
            interceptor,
            options,
            prefix: format!("pcnf{}", id.get(..8).unwrap_or("00000000")),
            manifest,
            users,
            groups,
            next: 0,
            created: Vec::new(),
            attempted: Vec::new(),
        }
    }

    /// Run the selected checks, clean up, then check the egress record.
    pub(crate) async fn run(mut self) -> Report {
        let mut checks = Vec::new();
        for &name in CHECKS {
            if !self.options.selected(name) || name == "declared-hosts" {
                continue;
            }
            let mut detail = Vec::new();
            let outcome = match name {
                "manifest" => self.manifest(&mut detail),
                "test-connection" => self.test_connection(&mut detail).await,
                "user-lifecycle" => self.user_lifecycle(&mut detail).await,
                "user-lost-create-response" => self.lost_create(&mut detail).await,
                "user-paging" => self.paging(&mut detail).await,
                "rate-limit" => self.rate_limit(&mut detail).await,
                "group-lifecycle" => self.group_lifecycle(&mut detail).await,
                _ => Ok(()),
            };
            self.interceptor.disarm();
            checks.push(check(name, outcome, detail));
        }
        let leftovers = self.cleanup().await;
        if self.options.selected("declared-hosts") {
            let mut detail = Vec::new();
            let outcome = self.declared_hosts(&mut detail);
            checks.push(check("declared-hosts", outcome, detail));
        }
        Report {
            connection: self.conn.name().to_string(),
            plugin: format!("{} {}", self.manifest.name, self.manifest.version),
            run_prefix: self.prefix,
            checks,
            leftovers,
        }
    }

    fn has(&self, c: Capability) -> bool {
        self.manifest.capabilities.contains(&c)
    }

    fn need(&self, c: Capability, what: &str) -> Step<()> {
        if self.has(c) {
            Ok(())
        } else {
            Err(Stop::Skip(format!(
                "the manifest does not declare the {} capability, so {what} cannot apply",
                format!("{c:?}").to_lowercase()
            )))
        }
    }

    fn user_set(&self) -> Step<MappingSet> {
        self.users
            .clone()
            .map_err(|e| Stop::Fail(format!("the default user mappings do not compile: {e}")))
    }

    fn group_set(&self) -> Step<MappingSet> {
        self.groups
            .clone()
            .map_err(|e| Stop::Fail(format!("the default group mappings do not compile: {e}")))
    }

    /// A new synthetic user mapped for create, with its matching attribute.
    fn new_user(&mut self) -> Step<(Vec<Attribute>, Vec<Attribute>, Attribute)> {
        let set = self.user_set()?;
        self.next += 1;
        let source = fixtures::user(
            &self.prefix,
            self.next,
            &self.options.email_domain,
            &self.options.user_attributes,
        );
        let attrs = fixtures::map(&set, &source, true).map_err(|e| {
            Stop::Fail(format!(
                "the default user mappings fail on a test user: {e}"
            ))
        })?;
        let Some(matching) = fixtures::matching(&set, &attrs) else {
            return fail(
                "no matching attribute of the default user mappings has a value for a test user, \
                 so the host could never match before creating",
            );
        };
        Ok((source, attrs, matching))
    }

    /// Create an object, registering it for cleanup.
    async fn create(
        &mut self,
        kind: ObjectKind,
        attrs: Vec<Attribute>,
        matching: &Attribute,
    ) -> Step<String> {
        self.attempted.push((kind, matching.clone()));
        let created = self
            .conn
            .create(kind, attrs)
            .await
            .map_err(|e| op_failed(&format!("create {kind}"), &e))?;
        if created.id.trim().is_empty() {
            return fail(format!("create {kind} returned an empty id"));
        }
        self.created.push((kind, created.id.clone()));
        Ok(created.id)
    }

    async fn get(&self, kind: ObjectKind, id: &str, when: &str) -> Step<Vec<Attribute>> {
        let got = self
            .conn
            .get(kind, id)
            .await
            .map_err(|e| op_failed(&format!("get {kind} {id} {when}"), &e))?;
        if got.id != id {
            return fail(format!(
                "get {kind} {id} {when} returned an object with id {}",
                got.id
            ));
        }
        Ok(got.attributes)
    }

    /// Find must return exactly the object `id`.
    async fn find_exactly(&self, kind: ObjectKind, m: &Attribute, id: &str) -> Step<()> {
        let found = self
            .conn
            .find(kind, m.clone())
            .await
            .map_err(|e| op_failed(&format!("find {kind}"), &e))?;
        let ids: Vec<&str> = found.iter().map(|o| o.id.as_str()).collect();
        if ids != [id] {
            return fail(format!(
                "find {kind} by {} = {} returned {:?}, expected exactly [{id:?}]",
                m.name,
                show(&m.value),
                ids
            ));
        }
        Ok(())
    }

    /// After a delete, get must answer not-found and find must not return it.
    async fn gone(
        &self,
        kind: ObjectKind,
        id: &str,
        m: &Attribute,
        d: &mut Vec<String>,
    ) -> Step<()> {
        match self.conn.get(kind, id).await {
            Err(CallError::Connector(ConnectorError::NotFound(_))) => {
                d.push(format!("after delete: get {kind} answers not-found"));
            }
            Err(e) => {
                return fail(format!(
                    "get {kind} {id} after delete should answer not-found, got {}",
                    desc(&e)
                ));
            }
            Ok(o) if get(&o.attributes, "deleted") == Some(&Value::Boolean(true)) => {
                d.push(format!(
                    "after delete: get returns the {kind} marked deleted = true (the target soft-deletes)"
                ));
            }
            Ok(_) => {
                return fail(format!(
                    "get {kind} {id} after delete still returns the object (it should answer \
                     not-found, or mark a soft-deleted object with deleted = true)"
                ));
            }
        }
        let found = self
            .conn
            .find(kind, m.clone())
            .await
            .map_err(|e| op_failed(&format!("find {kind} after delete"), &e))?;
        if found.iter().any(|o| o.id == id) {
            return fail(format!("find {kind} after delete still returns {id}"));
        }
        d.push("after delete: find does not return it".into());
        Ok(())
    }

    fn manifest(&self, d: &mut Vec<String>) -> Step<()> {
        let m = &self.manifest;
        let mut problems: Vec<String> = Vec::new();
        if m.name.trim().is_empty() {
            problems.push("the manifest's name is empty".into());
        }
        if m.version.trim().is_empty() {
            problems.push("the manifest's version is empty".into());
        }
        let mut seen = BTreeSet::new();
        for s in &m.settings {
            if s.name.trim().is_empty() || !seen.insert(s.name.clone()) {
                problems.push(format!("setting '{}' is empty or declared twice", s.name));
            }
            if s.description.trim().is_empty() {
                problems.push(format!("setting '{}' has no description", s.name));
            }
        }
        let mut seen = BTreeSet::new();
        for s in &m.secrets {
            if s.name.trim().is_empty() || !seen.insert(s.name.clone()) {
                problems.push(format!("secret '{}' is empty or declared twice", s.name));
            }
            if s.description.trim().is_empty() {
                problems.push(format!("secret '{}' has no description", s.name));
            }
        }
        if m.hosts.is_empty() {
            problems
                .push("the manifest declares no hosts, so the connector can reach nothing".into());
        }
        for h in &m.hosts {
            for name in placeholders(h) {
                if !m.settings.iter().any(|s| s.name == name) {
                    problems.push(format!(
                        "host pattern '{h}' uses '{{{name}}}', which is not a declared setting"
                    ));
                }
            }
        }
        let (users, groups) = (self.has(Capability::Users), self.has(Capability::Groups));
        if !users && !groups {
            problems.push("the manifest declares neither users nor groups".into());
        }
        if self.has(Capability::Memberships) && !groups {
            problems.push("memberships are declared without groups".into());
        }
        let mut known: Vec<String> = fixtures::KNOWN_USER_ATTRIBUTES
            .iter()
            .map(|s| s.to_string())
            .collect();
        known.extend(self.options.user_attributes.iter().map(|(k, _)| k.clone()));
        let mut gknown: Vec<String> = fixtures::KNOWN_GROUP_ATTRIBUTES
            .iter()
            .map(|s| s.to_string())
            .collect();
        gknown.extend(self.options.group_attributes.iter().map(|(k, _)| k.clone()));
        for (kind, declared, set, mappings, known) in [
            ("user", users, &self.users, &m.user_mappings, &known),
            ("group", groups, &self.groups, &m.group_mappings, &gknown),
        ] {
            if !declared {
                if !mappings.is_empty() {
                    problems.push(format!(
                        "{kind} mappings are declared without the {kind}s capability"
                    ));
                }
                continue;
            }
            let set = match set {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("the default {kind} mappings do not compile: {e}"));
                    continue;
                }
            };
            if mappings.is_empty() {
                problems.push(format!(
                    "the manifest declares {kind}s but no {kind} mappings"
                ));
            }
            if set.matching().is_empty() {
                problems.push(format!(
                    "no {kind} mapping has a matching precedence, so the host cannot match before creating"
                ));
            }
            for (target, source) in fixtures::sources_of(set) {
                if !known.iter().any(|k| k.eq_ignore_ascii_case(&source)) {
                    problems.push(format!(
                        "{kind} mapping '{target}' reads source attribute '{source}', which a directory {kind} \
                         does not have (known: {}); fix the mapping, or pass the attribute in \
                         Options::{kind}_attributes if your directory has it",
                        known.join(", ")
                    ));
                }
            }
        }
        d.push(format!(
            "{} {}: capabilities {:?}; settings {:?}; secrets {:?}; hosts {:?}",
            m.name,
            m.version,
            m.capabilities,
            m.settings.iter().map(|s| &s.name).collect::<Vec<_>>(),
            m.secrets.iter().map(|s| &s.name).collect::<Vec<_>>(),
            m.hosts
        ));
        if problems.is_empty() {
            Ok(())
        } else {
            d.extend(problems.iter().cloned());
            fail(problems.join("; "))
        }
    }

    async fn test_connection(&self, d: &mut Vec<String>) -> Step<()> {
        let msg = self
            .conn
            .test_connection()
            .await
            .map_err(|e| op_failed("test-connection", &e))?;
        d.push(format!("test-connection: {msg}"));
        Ok(())
    }

    async fn user_lifecycle(&mut self, d: &mut Vec<String>) -> Step<()> {
        self.need(Capability::Users, "the user lifecycle")?;
        let set = self.user_set()?;
        let (source, attrs, matching) = self.new_user()?;
        let kind = ObjectKind::User;
        let id = self.create(kind, attrs.clone(), &matching).await?;
        d.push(format!("create: {} attributes sent, id {id}", attrs.len()));

        let before = self.get(kind, &id, "after create").await?;
        match get(&before, &matching.name) {
            Some(v) if same(v, &matching.value) => {}
            Some(v) => {
                return fail(format!(
                    "get returns {} = {} but the user was created with {}",
                    matching.name,
                    show(v),
                    show(&matching.value)
                ));
            }
            None => {
                return fail(format!(
                    "get does not return the matching attribute '{}'",
                    matching.name
                ));
            }
        }
        for a in &attrs {
            match get(&before, &a.name) {
                Some(v) if !same(v, &a.value) => d.push(format!(
                    "note: {} was sent as {} and reads back as {}",
                    a.name,
                    show(&a.value),
                    show(v)
                )),
                None => d.push(format!("note: get does not return {}", a.name)),
                _ => {}
            }
        }
        d.push(format!(
            "get: {} attributes, {} as created",
            before.len(),
            matching.name
        ));
        self.find_exactly(kind, &matching, &id).await?;
        d.push(format!(
            "find by {}: exactly the created user",
            matching.name
        ));

        let edited = fixtures::map(&set, &fixtures::edited_user(&source), false).map_err(|e| {
            Stop::Fail(format!(
                "the default user mappings fail on an edited user: {e}"
            ))
        })?;
        let changes = fixtures::changes(&attrs, &edited);
        if changes.is_empty() {
            d.push(
                "update: skipped (the default mappings read neither displayName nor jobTitle)"
                    .into(),
            );
        } else {
            let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
            self.conn
                .update(kind, &id, changes.clone())
                .await
                .map_err(|e| op_failed("update user", &e))?;
            let after = self.get(kind, &id, "after update").await?;
            let mut visible = 0;
            for c in &changes {
                match get(&after, &c.name) {
                    Some(v) if same(v, &c.value) => visible += 1,
                    Some(v) => {
                        return fail(format!(
                            "after update, {} reads {} instead of {}",
                            c.name,
                            show(v),
                            show(&c.value)
                        ));
                    }
                    None => d.push(format!("note: get does not return the updated {}", c.name)),
                }
            }
            if visible == 0 {
                return fail(format!(
                    "get returns none of the updated attributes ({names:?}), so an update cannot be verified"
                ));
            }
            for a in attrs
                .iter()
                .filter(|a| !names.iter().any(|n| n.eq_ignore_ascii_case(&a.name)))
            {
                let was = get(&before, &a.name);
                if was.is_some_and(|w| same(w, &a.value))
                    && !get(&after, &a.name).is_some_and(|v| same(v, &a.value))
                {
                    return fail(format!(
                        "update of {names:?} also changed {} (was {}, now {}): only the changed attributes may be written",
                        a.name,
                        show(&a.value),
                        get(&after, &a.name)
                            .map(show)
                            .unwrap_or_else(|| "absent".into())
                    ));
                }
            }
            d.push(format!(
                "update {names:?}: visible, other attributes untouched"
            ));
        }

        if self.has(Capability::Disable) {
            for (op, active) in [("disable", false), ("enable", true)] {
                let r = if active {
                    self.conn.enable(kind, &id).await
                } else {
                    self.conn.disable(kind, &id).await
                };
                r.map_err(|e| op_failed(&format!("{op} user"), &e))?;
                let now = self.get(kind, &id, &format!("after {op}")).await?;
                match get(&now, "active") {
                    Some(Value::Boolean(b)) if *b == active => {
                        d.push(format!("{op}: active = {active}"))
                    }
                    Some(v) => {
                        return fail(format!("after {op}, active reads {}", show(v)));
                    }
                    None => d.push(format!("{op}: ok (get returns no `active` to verify it)")),
                }
            }
        } else {
            d.push("disable/enable: not declared".into());
        }

        if self.has(Capability::Delete) {
            self.conn
                .delete(kind, &id)
                .await
                .map_err(|e| op_failed("delete user", &e))?;
            self.gone(kind, &id, &matching, d).await?;
        } else {
            d.push("delete: not declared".into());
        }
        Ok(())
    }

    async fn lost_create(&mut self, d: &mut Vec<String>) -> Step<()> {
        self.need(Capability::Users, "creating users")?;
        let (_, attrs, matching) = self.new_user()?;
        let kind = ObjectKind::User;
        self.attempted.push((kind, matching.clone()));
        self.interceptor.arm(Fault::LoseResponse);
        let first = self.conn.create(kind, attrs.clone()).await;
        if !self.interceptor.armed().is_empty() {
            self.interceptor.disarm();
            return fail(format!(
                "create sent no write request, so no response could be lost (it answered {})",
                match &first {
                    Ok(o) => format!("id {}", o.id),
                    Err(e) => desc(e),
                }
            ));
        }
        let first_id = match &first {
            Ok(o) => {
                self.created.push((kind, o.id.clone()));
                d.push(format!(
                    "create with its response lost still returned id {} (the connector recovered)",
                    o.id
                ));
                Some(o.id.clone())
            }
            Err(e) => {
                d.push(format!("create with its response lost: {}", desc(e)));
                None
            }
        };
        // What the host does on retry: match first.
        let found = self
            .conn
            .find(kind, matching.clone())
            .await
            .map_err(|e| op_failed("find user", &e))?;
        for o in &found {
            self.created.push((kind, o.id.clone()));
        }
        match found.len() {
            1 => {
                if first_id.as_ref().is_some_and(|f| *f != found[0].id) {
                    return fail(format!(
                        "create returned id {} but find returns {}",
                        first_id.unwrap_or_default(),
                        found[0].id
                    ));
                }
                d.push(format!(
                    "retry: match-before-create by {} finds exactly one user ({}), which the host links",
                    matching.name, found[0].id
                ));
                return Ok(());
            }
            0 => d.push(format!(
                "retry: find by {} sees no user, so the host creates again",
                matching.name
            )),
            n => {
                return fail(format!(
                    "{n} users match {} = {} after one create whose response was lost: a duplicate",
                    matching.name,
                    show(&matching.value)
                ));
            }
        }
        match self.conn.create(kind, attrs).await {
            Err(CallError::Connector(ConnectorError::Conflict {
                existing_id: Some(existing),
                ..
            })) => {
                self.created.push((kind, existing.clone()));
                self.get(kind, &existing, "named by the conflict").await?;
                d.push(format!(
                    "the retried create answers conflict with the existing id {existing}, which the host links"
                ));
                Ok(())
            }
            Err(CallError::Connector(ConnectorError::Conflict { message, .. })) => fail(format!(
                "the retried create answers conflict without the existing id ({message}) and find did not \
                 find the user: the host can neither link nor create it; return Conflict with existing_id, \
                 or make find see the user"
            )),
            Err(e) => fail(format!("the retried create failed: {}", desc(&e))),
            Ok(o) => {
                self.created.push((kind, o.id.clone()));
                let again = self
                    .conn
                    .find(kind, matching.clone())
                    .await
                    .map_err(|e| op_failed("find user", &e))?;
                for x in &again {
                    self.created.push((kind, x.id.clone()));
                }
                if again.len() > 1 || first_id.as_ref().is_some_and(|f| *f != o.id) {
                    return fail(format!(
                        "the retried create made a second user ({} match {} = {}): a lost response \
                         leads to a duplicate; make find see the first user or answer conflict with its id",
                        again.len().max(2),
                        matching.name,
                        show(&matching.value)
                    ));
                }
                if again.is_empty() {
                    return fail(format!(
                        "find by {} does not see the user the retried create made ({})",
                        matching.name, o.id
                    ));
                }
                d.push(format!(
                    "the retried create made {}; exactly one user exists",
                    o.id
                ));
                Ok(())
            }
        }
    }

    async fn paging(&mut self, d: &mut Vec<String>) -> Step<()> {
        self.need(Capability::Users, "listing users")?;
        self.need(Capability::List, "paging")?;
        let mut ids = Vec::new();
        for _ in 0..self.options.paging_users {
            let (_, attrs, matching) = self.new_user()?;
            ids.push(self.create(ObjectKind::User, attrs, &matching).await?);
        }
        d.push(format!("created {} users", ids.len()));
        let size = self.options.page_size;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            if pages == self.options.max_pages {
                return fail(format!(
                    "list did not end within {pages} pages of {size}; raise max_pages for a large tenant"
                ));
            }
            let page = self
                .conn
                .list(ObjectKind::User, cursor.as_deref(), size)
                .await
                .map_err(|e| op_failed(&format!("list users (page {})", pages + 1), &e))?;
            pages += 1;
            if page.objects.len() > size as usize {
                return fail(format!(
                    "list page {pages} holds {} objects for a page size of {size}",
                    page.objects.len()
                ));
            }
            for o in &page.objects {
                *seen.entry(o.id.clone()).or_default() += 1;
            }
            match page.next_cursor {
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return fail(format!(
                        "list page {pages} returned its own cursor as the next one ({next})"
                    ));
                }
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let dups: Vec<String> = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| format!("{id} ×{n}"))
            .collect();
        if !dups.is_empty() {
            return fail(format!(
                "list returned objects more than once: {}",
                dups.join(", ")
            ));
        }
        let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
        if !missing.is_empty() {
            return fail(format!("list never returned the created users {missing:?}"));
        }
        d.push(format!(
            "{pages} pages of at most {size}: {} users, each test user exactly once",
            seen.len()
        ));
        Ok(())
    }

    async fn rate_limit(&mut self, d: &mut Vec<String>) -> Step<()> {
        self.need(Capability::Users, "calling user operations")?;
        let (_, attrs, matching) = self.new_user()?;
        let want = self.options.retry_after;
        let kind = ObjectKind::User;

        self.interceptor.arm(Fault::RateLimit { retry_after: want });
        let found = self.conn.find(kind, matching.clone()).await;
        self.rate_limited("find", found.map(|_| ()), d)?;

        self.attempted.push((kind, matching.clone()));
        self.interceptor.arm(Fault::RateLimit { retry_after: want });
        let created = self.conn.create(kind, attrs).await;
        if let Ok(o) = &created {
            self.created.push((kind, o.id.clone()));
        }
        self.rate_limited("create", created.map(|_| ()), d)
    }

    fn rate_limited(&self, op: &str, r: Result<(), CallError>, d: &mut Vec<String>) -> Step<()> {
        let want = self.options.retry_after;
        if !self.interceptor.armed().is_empty() {
            self.interceptor.disarm();
            return fail(format!("{op} made no request, so no 429 could be returned"));
        }
        match r {
            Err(CallError::Connector(ConnectorError::RateLimited {
                retry_after: Some(got),
                ..
            })) if got == want => {
                d.push(format!(
                    "{op}: a 429 with Retry-After {} s is reported as rate-limited, retry after {} ms",
                    want.as_secs(),
                    got.as_millis()
                ));
                Ok(())
            }
            Err(CallError::Connector(ConnectorError::RateLimited { retry_after, .. })) => {
                fail(format!(
                    "{op}: a 429 with Retry-After {} s is reported as rate-limited with retry_after {:?}, \
                 expected {} ms (use errors::from_response or retry_after_ms)",
                    want.as_secs(),
                    retry_after.map(|r| r.as_millis()),
                    want.as_millis()
                ))
            }
            Err(e) => fail(format!(
                "{op}: a 429 with Retry-After {} s should be reported as rate-limited, got {}",
                want.as_secs(),
                desc(&e)
            )),
            Ok(()) => fail(format!(
                "{op}: succeeded although its request was answered 429"
            )),
        }
    }

    async fn group_lifecycle(&mut self, d: &mut Vec<String>) -> Step<()> {
        self.need(Capability::Groups, "the group lifecycle")?;
        let set = self.group_set()?;
        self.next += 1;
        let source = fixtures::group(&self.prefix, self.next, &self.options.group_attributes);
        let attrs = fixtures::map(&set, &source, true).map_err(|e| {
            Stop::Fail(format!(
                "the default group mappings fail on a test group: {e}"
            ))
        })?;
        let Some(matching) = fixtures::matching(&set, &attrs) else {
            return fail(
                "no matching attribute of the default group mappings has a value for a test group",
            );
        };
        let kind = ObjectKind::Group;
        let gid = self.create(kind, attrs.clone(), &matching).await?;
        d.push(format!("create: id {gid}"));
        let got = self.get(kind, &gid, "after create").await?;
        if !get(&got, &matching.name).is_some_and(|v| same(v, &matching.value)) {
            return fail(format!(
                "get of the group does not return {} = {}",
                matching.name,
                show(&matching.value)
            ));
        }
        self.find_exactly(kind, &matching, &gid).await?;
        d.push(format!(
            "get and find by {}: the created group",
            matching.name
        ));

        if self.has(Capability::Memberships) {
            self.need(Capability::Users, "memberships of users")?;
            let mut members = Vec::new();
            for _ in 0..3 {
                let (_, attrs, m) = self.new_user()?;
                members.push(self.create(ObjectKind::User, attrs, &m).await?);
            }
            self.conn
                .add_members(&gid, &members)
                .await
                .map_err(|e| op_failed("add-members", &e))?;
            let now = self.members(&gid, "after add-members").await?;
            let missing: Vec<&String> = members.iter().filter(|m| !now.contains(*m)).collect();
            if !missing.is_empty() {
                return fail(format!(
                    "after add-members of {members:?} in one batch, the group's members are {now:?} (missing {missing:?})"
                ));
            }
            d.push("add-members: 3 users in one batch, all visible".into());
            let (removed, kept) = members.split_at(2);
            self.conn
                .remove_members(&gid, removed)
                .await
                .map_err(|e| op_failed("remove-members", &e))?;
            let now = self.members(&gid, "after remove-members").await?;
            if removed.iter().any(|r| now.contains(r)) || !kept.iter().all(|k| now.contains(k)) {
                return fail(format!(
                    "after remove-members of {removed:?} in one batch, the group's members are {now:?} \
                     (expected {kept:?} to stay and the others to go)"
                ));
            }
            d.push("remove-members: 2 users in one batch; the third stays".into());
        } else {
            d.push("memberships: not declared".into());
        }

        if self.has(Capability::Delete) {
            self.conn
                .delete(kind, &gid)
                .await
                .map_err(|e| op_failed("delete group", &e))?;
            self.gone(kind, &gid, &matching, d).await?;
        } else {
            d.push("delete: not declared".into());
        }
        Ok(())
    }

    async fn members(&self, gid: &str, when: &str) -> Step<Vec<String>> {
        let got = self.get(ObjectKind::Group, gid, when).await?;
        match get(&got, "members") {
            Some(Value::TextList(l)) => Ok(l.clone()),
            Some(Value::Text(t)) => Ok(vec![t.clone()]),
            Some(v) => fail(format!(
                "the group's members attribute is {}, not a list of ids",
                show(v)
            )),
            None => fail(
                "get of a group returns no `members` attribute, so memberships cannot be verified; \
                 return the member ids as `members`",
            ),
        }
    }

    fn declared_hosts(&self, d: &mut Vec<String>) -> Step<()> {
        let records = self.interceptor.records();
        if records.is_empty() {
            return Err(Stop::Skip("the connector made no HTTP request".into()));
        }
        let origins: BTreeSet<&str> = records.iter().map(|r| r.origin.as_str()).collect();
        let outside: Vec<String> = records
            .iter()
            .filter(|r| !r.declared)
            .map(|r| format!("{:?} {}{} ({:?})", r.method, r.origin, r.path, r.decision))
            .collect();
        let denied = records
            .iter()
            .filter(|r| r.decision == Decision::Denied)
            .count();
        d.push(format!(
            "{} requests to {:?}; {denied} denied by the host",
            records.len(),
            origins
        ));
        if outside.is_empty() {
            Ok(())
        } else {
            d.extend(outside.iter().cloned());
            fail(format!(
                "{} of {} requests went to hosts the manifest does not declare: {}",
                outside.len(),
                records.len(),
                outside.join(", ")
            ))
        }
    }

    /// Delete (or disable) everything this run created; what remains.
    async fn cleanup(&mut self) -> Vec<String> {
        let mut targets: Vec<(ObjectKind, String)> = Vec::new();
        let mut push = |t: (ObjectKind, String)| {
            if !targets.contains(&t) {
                targets.push(t);
            }
        };
        for t in self.created.drain(..) {
            push(t);
        }
        for (kind, m) in std::mem::take(&mut self.attempted) {
            if let Ok(found) = self.conn.find(kind, m).await {
                for o in found {
                    push((kind, o.id));
                }
            }
        }
        // Groups first: a user still in a group may not be deletable.
        targets.sort_by_key(|(k, _)| *k != ObjectKind::Group);
        let mut left = Vec::new();
        for (kind, id) in targets {
            if self.options.keep {
                left.push(format!("{kind} {id} (kept)"));
            } else if self.has(Capability::Delete) {
                match self.conn.delete(kind, &id).await {
                    Ok(()) | Err(CallError::Connector(ConnectorError::NotFound(_))) => {}
                    Err(e) => left.push(format!("{kind} {id}: delete failed: {}", desc(&e))),
                }
            } else if self.has(Capability::Disable) {
                match self.conn.disable(kind, &id).await {
                    Ok(()) => left.push(format!(
                        "{kind} {id}: disabled (the connector cannot delete)"
                    )),
                    Err(e) => left.push(format!("{kind} {id}: disable failed: {}", desc(&e))),
                }
            } else {
                left.push(format!(
                    "{kind} {id}: the connector can neither delete nor disable"
                ));
            }
        }
        left
    }
}

fn check(name: &str, outcome: Step<()>, detail: Vec<String>) -> Check {
    let (status, reason) = match outcome {
        Ok(()) => (Status::Passed, String::new()),
        Err(Stop::Fail(r)) => (Status::Failed, r),
        Err(Stop::Skip(r)) => (Status::Skipped, r),
    };
    Check {
        name: name.to_string(),
        status,
        reason,
        detail,
    }
}

/// The `{setting}` names in a host pattern.
fn placeholders(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found() {
        assert_eq!(
            placeholders("https://{subdomain}.zendesk.com"),
            vec!["subdomain"]
        );
        assert_eq!(placeholders("{base_url}"), vec!["base_url"]);
        assert!(placeholders("https://x.example").is_empty());
        assert!(placeholders("https://{broken").is_empty());
    }
}
