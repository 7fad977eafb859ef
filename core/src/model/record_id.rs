//! Types usable as a record id.

use serde_json::Value;

/// A value that identifies a record on the wire: a string or an integer.
pub trait RecordId {
    /// The id as JSON.
    fn to_id(&self) -> Value;
    /// The kind of id, as exported for mocks: `string` or `integer`.
    fn id_kind() -> &'static str
    where
        Self: Sized;
}

impl RecordId for String {
    fn to_id(&self) -> Value {
        Value::String(self.clone())
    }
    fn id_kind() -> &'static str {
        "string"
    }
}

impl RecordId for &str {
    fn to_id(&self) -> Value {
        Value::String((*self).to_owned())
    }
    fn id_kind() -> &'static str {
        "string"
    }
}

macro_rules! integer_ids {
    ($($t:ty),*) => {$(
        impl RecordId for $t {
            fn to_id(&self) -> Value {
                Value::from(*self)
            }
            fn id_kind() -> &'static str {
                "integer"
            }
        }
    )*};
}
integer_ids!(i16, i32, i64, u16, u32, u64, usize);

impl<T: RecordId> RecordId for Option<T> {
    fn to_id(&self) -> Value {
        self.as_ref().map_or(Value::Null, RecordId::to_id)
    }
    fn id_kind() -> &'static str {
        T::id_kind()
    }
}
