//! SCIM PATCH request bodies (RFC 7644 §3.5.2).

use serde::Serialize;

use super::PATCH_OP_SCHEMA;
use super::filter::quote;

/// The kind of a PATCH operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchOperationKind {
    /// `add`.
    Add,
    /// `replace`.
    Replace,
    /// `remove`.
    Remove,
}

/// One PATCH operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatchOperation {
    /// The operation.
    pub op: PatchOperationKind,
    /// The target path; `None` means the resource itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value; `None` for `remove`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// A SCIM PatchOp message:
///
/// ```
/// use provisio_sdk::scim::PatchOp;
/// let body = PatchOp::new()
///     .replace("displayName", "Alice")
///     .remove("title")
///     .to_json();
/// assert_eq!(body["Operations"][0]["op"], "replace");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatchOp {
    operations: Vec<PatchOperation>,
}

impl PatchOp {
    /// An empty PatchOp.
    pub fn new() -> Self {
        PatchOp::default()
    }

    /// Append an operation.
    pub fn push(&mut self, operation: PatchOperation) {
        self.operations.push(operation);
    }

    /// `{"op":"add","path":path,"value":value}`.
    pub fn add(mut self, path: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.push(PatchOperation {
            op: PatchOperationKind::Add,
            path: Some(path.into()),
            value: Some(value.into()),
        });
        self
    }

    /// `{"op":"replace","path":path,"value":value}`.
    pub fn replace(mut self, path: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.push(PatchOperation {
            op: PatchOperationKind::Replace,
            path: Some(path.into()),
            value: Some(value.into()),
        });
        self
    }

    /// `{"op":"replace","value":{...}}`: replace the attributes of an object
    /// without a path.
    pub fn replace_attributes(mut self, value: serde_json::Value) -> Self {
        self.push(PatchOperation {
            op: PatchOperationKind::Replace,
            path: None,
            value: Some(value),
        });
        self
    }

    /// `{"op":"remove","path":path}`.
    pub fn remove(mut self, path: impl Into<String>) -> Self {
        self.push(PatchOperation {
            op: PatchOperationKind::Remove,
            path: Some(path.into()),
            value: None,
        });
        self
    }

    /// One `add` of all `member_ids` to `members`:
    /// `{"op":"add","path":"members","value":[{"value":id},...]}`.
    pub fn add_members<S: AsRef<str>>(self, member_ids: &[S]) -> Self {
        let value: Vec<serde_json::Value> = member_ids
            .iter()
            .map(|id| serde_json::json!({ "value": id.as_ref() }))
            .collect();
        self.add("members", value)
    }

    /// One `remove` per member, with path `members[value eq "id"]`.
    pub fn remove_members<S: AsRef<str>>(self, member_ids: &[S]) -> Self {
        member_ids
            .iter()
            .fold(self, |patch, id| patch.remove(member_path(id.as_ref())))
    }

    /// The operations.
    pub fn operations(&self) -> &[PatchOperation] {
        &self.operations
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// The PatchOp message:
    /// `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let operations: Vec<serde_json::Value> = self
            .operations
            .iter()
            .map(|op| {
                let mut obj = serde_json::Map::new();
                let kind = match op.op {
                    PatchOperationKind::Add => "add",
                    PatchOperationKind::Replace => "replace",
                    PatchOperationKind::Remove => "remove",
                };
                obj.insert("op".into(), kind.into());
                if let Some(path) = &op.path {
                    obj.insert("path".into(), path.clone().into());
                }
                if let Some(value) = &op.value {
                    obj.insert("value".into(), value.clone());
                }
                serde_json::Value::Object(obj)
            })
            .collect();
        serde_json::json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": operations,
        })
    }
}

/// The path of one group member: `members[value eq "id"]`.
pub fn member_path(id: &str) -> String {
    format!("members[value eq {}]", quote(id))
}

/// Whether a PATCH succeeded: 200 (with the resource) or 204 (no body).
pub fn patch_succeeded(status: u16) -> bool {
    status == 200 || status == 204
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_json() {
        let body = PatchOp::new()
            .replace("displayName", "Alice")
            .replace(r#"emails[type eq "work"].value"#, "a@x")
            .remove("title")
            .to_json();
        assert_eq!(
            body,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "replace", "path": "displayName", "value": "Alice"},
                    {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@x"},
                    {"op": "remove", "path": "title"}
                ]
            })
        );
    }

    #[test]
    fn members() {
        let add = PatchOp::new().add_members(&["u1", "u2"]).to_json();
        assert_eq!(
            add["Operations"],
            json!([{"op": "add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}])
        );
        let remove = PatchOp::new().remove_members(&["u1", "a\"b"]).to_json();
        assert_eq!(
            remove["Operations"],
            json!([
                {"op": "remove", "path": "members[value eq \"u1\"]"},
                {"op": "remove", "path": "members[value eq \"a\\\"b\"]"}
            ])
        );
    }

    #[test]
    fn success_statuses() {
        assert!(patch_succeeded(200));
        assert!(patch_succeeded(204));
        assert!(!patch_succeeded(201));
        assert!(!patch_succeeded(400));
    }
}
