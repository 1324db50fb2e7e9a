//! How values appear in a dump (see `dump`): the kinds of columns and the one conversion between
//! what a backend stores and the dump's JSON, in both directions.

use serde_json::{Map, Number, Value};

use crate::dump::{DUMP_BOOLEAN_COLUMNS, DUMP_JSON_VALUE_COLUMNS};

/// How a column's values appear in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnKind {
    /// A 64-bit integer: a JSON number.
    Integer,
    /// A float: a JSON number.
    Real,
    /// Text (JSON kept as written included): a JSON string.
    Text,
    /// Bytes: `{"$bytes":"<lowercase hex>"}`.
    Bytes,
    /// A boolean: `true` or `false`.
    Boolean,
    /// A JSON value stored as a value ([`DUMP_JSON_VALUE_COLUMNS`]): the value itself.
    JsonValue,
}

impl ColumnKind {
    /// The kind of a column a backend stores as integers (`Boolean` for the declared booleans).
    pub fn of_integer_column(table: &str, column: &str) -> Self {
        if DUMP_BOOLEAN_COLUMNS.contains(&(table, column)) { Self::Boolean } else { Self::Integer }
    }

    /// The kind of a column a backend stores as text (`JsonValue` for the declared JSON values).
    pub fn of_text_column(table: &str, column: &str) -> Self {
        if DUMP_JSON_VALUE_COLUMNS.contains(&(table, column)) { Self::JsonValue } else { Self::Text }
    }
}

/// A value as a backend reads or binds it. Loading binds [`Boolean`](Self::Boolean) as the
/// backend's boolean (SQLite: 0 or 1) and a JSON value as its compact text ([`Text`](Self::Text)).
#[derive(Debug, Clone, PartialEq)]
pub enum DumpValue {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A boolean.
    Boolean(bool),
}

impl DumpValue {
    /// The dump's JSON for a stored value of a column of `kind`; the reason when they do not fit.
    pub fn into_json(self, kind: ColumnKind) -> std::result::Result<Value, &'static str> {
        match (self, kind) {
            (Self::Null, _) => Ok(Value::Null),
            (Self::Integer(value), ColumnKind::Integer) => Ok(Value::from(value)),
            (Self::Integer(0), ColumnKind::Boolean) => Ok(Value::Bool(false)),
            (Self::Integer(1), ColumnKind::Boolean) => Ok(Value::Bool(true)),
            (Self::Integer(_), ColumnKind::Boolean) => Err("a boolean column holds an integer other than 0 or 1"),
            (Self::Boolean(value), ColumnKind::Boolean) => Ok(Value::Bool(value)),
            (Self::Real(value), ColumnKind::Real) => {
                Number::from_f64(value).map(Value::Number).ok_or("a float column holds a value JSON has no number for")
            }
            (Self::Text(text), ColumnKind::Text) => Ok(Value::String(text)),
            (Self::Text(text), ColumnKind::JsonValue) => match serde_json::from_str(&text) {
                Ok(Value::Null) => Err("a JSON column holds JSON null, which a dump cannot tell from NULL"),
                Ok(value) => Ok(value),
                Err(_) => Err("a JSON column holds text that is not JSON"),
            },
            (Self::Bytes(bytes), ColumnKind::Bytes) => Ok(bytes_json(&bytes)),
            _ => Err("the stored value is not of the column's type"),
        }
    }

    /// The value to bind for a dump's `value` of a column of `kind`; the reason when it does not fit.
    pub fn from_json(value: &Value, kind: ColumnKind) -> std::result::Result<Self, &'static str> {
        match (value, kind) {
            (Value::Null, _) => Ok(Self::Null),
            (Value::Number(number), ColumnKind::Integer) => {
                number.as_i64().map(Self::Integer).ok_or("expected an integer of at most 64 bits")
            }
            (Value::Number(number), ColumnKind::Real) => number.as_f64().map(Self::Real).ok_or("expected a number"),
            (Value::String(text), ColumnKind::Text) => Ok(Self::Text(text.clone())),
            (Value::Bool(value), ColumnKind::Boolean) => Ok(Self::Boolean(*value)),
            (Value::Object(object), ColumnKind::Bytes) => match (object.len(), object.get("$bytes")) {
                (1, Some(Value::String(hex))) => {
                    hex_decode(hex).map(Self::Bytes).ok_or("expected an even number of hex digits")
                }
                _ => Err("expected {\"$bytes\":\"<hex>\"}"),
            },
            (value, ColumnKind::JsonValue) => Ok(Self::Text(value.to_string())),
            (_, ColumnKind::Integer) => Err("expected an integer"),
            (_, ColumnKind::Real) => Err("expected a number"),
            (_, ColumnKind::Text) => Err("expected a string"),
            (_, ColumnKind::Boolean) => Err("expected true or false"),
            (_, ColumnKind::Bytes) => Err("expected {\"$bytes\":\"<hex>\"}"),
        }
    }
}

/// `{"$bytes":"<lowercase hex>"}`.
fn bytes_json(bytes: &[u8]) -> Value {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let hex: String = bytes
        .iter()
        .flat_map(|byte| [DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 0x0f)]])
        .map(char::from)
        .collect();
    let mut object = Map::new();
    object.insert("$bytes".to_owned(), Value::String(hex));
    Value::Object(object)
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    let digit = |byte: u8| char::from(byte).to_digit(16).and_then(|digit| u8::try_from(digit).ok());
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.as_bytes().chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(kind: ColumnKind, stored: DumpValue, dumped: Value) {
        assert_eq!(stored.clone().into_json(kind), Ok(dumped.clone()), "{kind:?} dump");
        let bound = DumpValue::from_json(&dumped, kind).expect("loads");
        let expected = match (kind, stored) {
            (ColumnKind::Boolean, DumpValue::Integer(value)) => DumpValue::Boolean(value == 1),
            (_, stored) => stored,
        };
        assert_eq!(bound, expected, "{kind:?} load");
    }

    #[test]
    fn values_round_trip_in_the_documented_shapes() {
        check(ColumnKind::Integer, DumpValue::Integer(-7), json!(-7));
        check(ColumnKind::Integer, DumpValue::Integer(i64::MAX), json!(i64::MAX));
        check(ColumnKind::Real, DumpValue::Real(0.5), json!(0.5));
        check(ColumnKind::Text, DumpValue::Text("[1, 2]".to_owned()), json!("[1, 2]"));
        check(ColumnKind::Bytes, DumpValue::Bytes(vec![0, 0xab, 0xff]), json!({ "$bytes": "00abff" }));
        check(ColumnKind::Bytes, DumpValue::Bytes(Vec::new()), json!({ "$bytes": "" }));
        check(ColumnKind::Boolean, DumpValue::Integer(1), json!(true));
        check(ColumnKind::Boolean, DumpValue::Boolean(false), json!(false));
        check(ColumnKind::JsonValue, DumpValue::Text("[[1,2,null,\"a\"]]".to_owned()), json!([[1, 2, null, "a"]]));
        check(ColumnKind::Text, DumpValue::Null, Value::Null);
    }

    #[test]
    fn values_that_do_not_fit_are_refused_with_a_reason() {
        assert!(DumpValue::Integer(2).into_json(ColumnKind::Boolean).is_err());
        assert!(DumpValue::Text("null".to_owned()).into_json(ColumnKind::JsonValue).is_err());
        assert!(DumpValue::Text("{".to_owned()).into_json(ColumnKind::JsonValue).is_err());
        assert!(DumpValue::Real(f64::NAN).into_json(ColumnKind::Real).is_err());
        assert!(DumpValue::Text("x".to_owned()).into_json(ColumnKind::Integer).is_err());
        for (value, kind) in [
            (json!("7"), ColumnKind::Integer),
            (json!(1.5), ColumnKind::Integer),
            (json!(u64::MAX), ColumnKind::Integer),
            (json!(7), ColumnKind::Text),
            (json!(1), ColumnKind::Boolean),
            (json!("00ff"), ColumnKind::Bytes),
            (json!({ "$bytes": "abc" }), ColumnKind::Bytes),
            (json!({ "$bytes": "zz" }), ColumnKind::Bytes),
            (json!({ "$bytes": "00", "x": 1 }), ColumnKind::Bytes),
        ] {
            assert!(DumpValue::from_json(&value, kind).is_err(), "{value} as {kind:?}");
        }
    }
}
