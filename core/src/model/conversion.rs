//! Converting models to and from storage records, with errors that name the
//! model, the record, the attribute and its value.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::traits::Record;

/// How much of a value a conversion error shows.
const VALUE_EXCERPT: usize = 120;

/// Serialises a model into a record; fails unless it serialises to a JSON object.
pub fn to_record<T: Serialize>(model: &str, value: &T) -> Result<Record> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::Definition {
            model: model.to_owned(),
            problem: format!(
                "serialises to {other}, not to an object; models must be structs with named fields"
            ),
        }),
        Err(source) => Err(Error::Conversion {
            model: model.to_owned(),
            id: String::new(),
            direction: "to a record",
            attribute: Box::default(),
            value: Box::default(),
            source,
        }),
    }
}

/// Deserialises a model from a record; `direction` says where the record
/// came from. The error names the record (its `id`), the attribute that
/// failed and an excerpt of its value.
pub fn from_record<T: DeserializeOwned>(
    model: &str,
    record: &Record,
    direction: &'static str,
) -> Result<T> {
    serde_path_to_error::deserialize(record).map_err(|error| {
        let attribute = error.path().to_string();
        let attribute = if attribute == "." {
            String::new()
        } else {
            attribute
        };
        let value = value_at(record, error.path())
            .map(|value| excerpt(&value.to_string()))
            .unwrap_or_default();
        Error::Conversion {
            model: model.to_owned(),
            id: record.get("id").map(Value::to_string).unwrap_or_default(),
            direction,
            attribute: attribute.into_boxed_str(),
            value: value.into_boxed_str(),
            source: error.into_inner(),
        }
    })
}

/// The value a deserialisation path points to in `record`, if it is there.
fn value_at<'a>(record: &'a Record, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    use serde_path_to_error::Segment;
    let mut segments = path.iter();
    let mut current = match segments.next()? {
        Segment::Map { key } => record.get(key)?,
        _ => return None,
    };
    for segment in segments {
        current = match segment {
            Segment::Map { key } => current.get(key)?,
            Segment::Seq { index } => current.get(index)?,
            _ => return Some(current),
        };
    }
    Some(current)
}

/// `text`, cut to [`VALUE_EXCERPT`] characters with an ellipsis and the full length.
fn excerpt(text: &str) -> String {
    let length = text.chars().count();
    if length <= VALUE_EXCERPT {
        return text.to_owned();
    }
    let cut: String = text.chars().take(VALUE_EXCERPT).collect();
    format!("{cut}… ({length} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::chain;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct User {
        id: i64,
        name: String,
        address: Address,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Address {
        city: String,
    }

    fn record(value: Value) -> Record {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_failed_conversion_names_record_attribute_and_value() {
        let bad = record(json!({"id": 42, "name": ["a", "b"], "address": {"city": "x"}}));
        let error = from_record::<User>("User", &bad, "from the received attributes").unwrap_err();
        let shown = chain(&error);
        assert!(shown.contains("User 42"), "{shown}");
        assert!(shown.contains("`name` is [\"a\",\"b\"]"), "{shown}");
        assert!(shown.contains("expected a string"), "{shown}");
        assert!(error.is_permanent());

        let nested = record(json!({"id": 7, "name": "n", "address": {"city": 3}}));
        let shown = chain(&from_record::<User>("User", &nested, "from x").unwrap_err());
        assert!(shown.contains("`address.city` is 3"), "{shown}");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "y".repeat(500);
        let bad = record(json!({"id": 1, "name": 5, "address": {"city": long}}));
        let shown = chain(&from_record::<User>("User", &bad, "from x").unwrap_err());
        assert!(shown.contains("`name` is 5"), "{shown}");
        assert_eq!(
            excerpt(&"z".repeat(200)).chars().count(),
            120 + "… (200 characters)".chars().count()
        );
    }
}
