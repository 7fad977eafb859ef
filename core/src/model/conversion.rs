//! Converting models to and from storage records, with errors that name the model.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::traits::Record;

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
            direction: "to a record",
            source,
        }),
    }
}

/// Deserialises a model from a record; `direction` says where the record came from.
pub fn from_record<T: DeserializeOwned>(
    model: &str,
    record: &Record,
    direction: &'static str,
) -> Result<T> {
    serde_json::from_value(Value::Object(record.clone())).map_err(|source| Error::Conversion {
        model: model.to_owned(),
        direction,
        source,
    })
}
