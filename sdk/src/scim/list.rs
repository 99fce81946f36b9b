//! SCIM list responses and `startIndex`/`count` paging (RFC 7644 §3.4.2).

use crate::ConnectorError;

/// A parsed ListResponse. Parsing is lenient: numbers sent as strings are
/// accepted, `Resources` may be missing (no results) or spelled `resources`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListResponse {
    /// `totalResults`: the number of results of the whole query.
    pub total_results: Option<u64>,
    /// `itemsPerPage`: the number of resources on this page.
    pub items_per_page: Option<u64>,
    /// `startIndex`: the 1-based index of the first resource on this page.
    pub start_index: Option<u64>,
    /// `Resources`: the resources on this page.
    pub resources: Vec<serde_json::Value>,
}

impl ListResponse {
    /// Parse a ListResponse from JSON. A non-object, or `Resources` that is
    /// not an array, gives `ConnectorError::Other`.
    pub fn parse(json: &serde_json::Value) -> Result<Self, ConnectorError> {
        let obj = json.as_object().ok_or_else(|| {
            ConnectorError::Other("the SCIM list response is not a JSON object".into())
        })?;
        let number = |key: &str| {
            obj.get(key).and_then(|v| match v {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
        };
        let resources = match obj.get("Resources").or_else(|| obj.get("resources")) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(_) => {
                return Err(ConnectorError::Other(
                    "the SCIM list response's `Resources` is not an array".into(),
                ));
            }
        };
        Ok(ListResponse {
            total_results: number("totalResults"),
            items_per_page: number("itemsPerPage"),
            start_index: number("startIndex"),
            resources,
        })
    }

    /// Parse a ListResponse from a response body.
    pub fn from_slice(body: &[u8]) -> Result<Self, ConnectorError> {
        let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ConnectorError::Other(format!("the SCIM list response is not JSON: {e}"))
        })?;
        Self::parse(&json)
    }

    /// The `startIndex` of the next page, or `None` when this page was the
    /// last one. `requested_start` and `requested_count` are what the request
    /// asked for; the response's own `startIndex` wins when present.
    pub fn next_start_index(&self, requested_start: u64, requested_count: u64) -> Option<u64> {
        if self.resources.is_empty() {
            return None;
        }
        let start = self.start_index.unwrap_or(requested_start).max(1);
        let next = start.saturating_add(self.resources.len() as u64);
        match self.total_results {
            Some(total) => (next <= total).then_some(next),
            // Without a total, a short page is the last one.
            None => ((self.resources.len() as u64) >= requested_count).then_some(next),
        }
    }
}

/// The `startIndex` a list cursor stands for: `None` → 1; otherwise the
/// cursor must be a positive integer (the next `startIndex` as text).
pub fn cursor_to_start_index(cursor: Option<&str>) -> Result<u64, ConnectorError> {
    match cursor {
        None => Ok(1),
        Some(c) => match c.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(ConnectorError::InvalidInput(format!(
                "invalid list cursor `{c}`: expected a startIndex (a positive integer)"
            ))),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(total: Option<u64>, start: u64, n: usize) -> ListResponse {
        ListResponse {
            total_results: total,
            items_per_page: Some(n as u64),
            start_index: Some(start),
            resources: vec![json!({}); n],
        }
    }

    #[test]
    fn parse_list_response() {
        let r = ListResponse::parse(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 6, "startIndex": 1, "itemsPerPage": 2,
            "Resources": [{"id": "a"}, {"id": "b"}]
        }))
        .unwrap();
        assert_eq!(r.total_results, Some(6));
        assert_eq!(r.resources.len(), 2);
        let r = ListResponse::parse(&json!({"totalResults": "0"})).unwrap();
        assert_eq!(r.total_results, Some(0));
        assert!(r.resources.is_empty());
        assert!(ListResponse::parse(&json!([1])).is_err());
        assert!(ListResponse::parse(&json!({"Resources": 3})).is_err());
        assert!(ListResponse::from_slice(b"not json").is_err());
    }

    #[test]
    fn paging() {
        assert_eq!(page(Some(6), 1, 2).next_start_index(1, 2), Some(3));
        assert_eq!(page(Some(6), 5, 2).next_start_index(5, 2), None);
        assert_eq!(page(Some(7), 5, 2).next_start_index(5, 2), Some(7));
        assert_eq!(page(Some(6), 1, 0).next_start_index(1, 2), None);
        // A server that returns fewer than asked but reports more.
        assert_eq!(page(Some(10), 1, 3).next_start_index(1, 5), Some(4));
        // No total: a full page continues, a short one ends.
        assert_eq!(page(None, 1, 5).next_start_index(1, 5), Some(6));
        assert_eq!(page(None, 1, 4).next_start_index(1, 5), None);
        // Missing startIndex: use the requested one.
        let mut p = page(Some(10), 1, 2);
        p.start_index = None;
        assert_eq!(p.next_start_index(3, 2), Some(5));
    }

    #[test]
    fn cursors() {
        assert_eq!(cursor_to_start_index(None).unwrap(), 1);
        assert_eq!(cursor_to_start_index(Some("101")).unwrap(), 101);
        assert!(cursor_to_start_index(Some("0")).is_err());
        assert!(cursor_to_start_index(Some("abc")).is_err());
    }
}
