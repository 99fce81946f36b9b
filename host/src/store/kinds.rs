//! Enums stored as text, and the SQL helpers shared by the table modules.

use crate::model::ObjectKind;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// Define a public enum stored as fixed text: `as_str`, `Display`, `FromStr`,
/// `ToSql` and `FromSql`, and serde with the same spelling.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", stringify!($name), " '{}' (expected one of: {})"),
                        other,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}
pub(crate) use text_enum;

impl ToSql for ObjectKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(kind_str(*self)))
    }
}

impl FromSql for ObjectKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "user" => Ok(ObjectKind::User),
            "group" => Ok(ObjectKind::Group),
            other => Err(FromSqlError::Other(
                format!("unknown object kind '{other}' (expected user or group)").into(),
            )),
        }
    }
}

/// The stored spelling of an object kind.
pub(crate) fn kind_str(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "user",
        ObjectKind::Group => "group",
    }
}

/// Read a JSON text column, reporting a parse error as a conversion failure
/// of that column.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("invalid JSON: {e}").into(),
        )
    })
}

/// Encode a value for a JSON text column.
pub(crate) fn to_json_text<T: serde::Serialize + ?Sized>(
    value: &T,
    op: &'static str,
    table: &'static str,
    column: &'static str,
) -> Result<String, super::StoreError> {
    serde_json::to_string(value).map_err(|source| super::StoreError::Json {
        op,
        table,
        column,
        source,
    })
}

#[cfg(test)]
mod tests {

    text_enum! {
        /// Test enum.
        pub enum Colour { Red => "red", DarkBlue => "dark-blue" }
    }

    #[test]
    fn text_enum_round_trips() {
        for c in Colour::ALL {
            assert_eq!(c.as_str().parse::<Colour>(), Ok(*c));
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        let err = "green".parse::<Colour>().unwrap_err();
        assert!(
            err.contains("unknown Colour 'green'") && err.contains("red, dark-blue"),
            "{err}"
        );
    }
}
