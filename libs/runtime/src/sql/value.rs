//! The values a statement binds and a row holds, the same on both backends.

/// A SQL value. A NULL keeps the type it stands for: PostgreSQL types every
/// parameter, and a NULL bound as a number into a text column is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

/// The type of a value, for a NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
    Bool,
}

/// What can be bound to a statement's parameter.
pub trait Encode {
    /// The type a NULL of this kind is bound as.
    const KIND: Kind;
    fn encode(self) -> Value;
}

macro_rules! encode {
    ($kind:ident, $variant:ident: $($t:ty => $conv:expr),+ $(,)?) => {$(
        impl Encode for $t {
            const KIND: Kind = Kind::$kind;
            fn encode(self) -> Value {
                let convert: fn($t) -> _ = $conv;
                Value::$variant(convert(self))
            }
        }
    )+};
}

encode!(Int, Int: i64 => |v| v, i32 => i64::from, u32 => i64::from, i16 => i64::from);
encode!(Real, Real: f64 => |v| v);
encode!(Text, Text: String => |v| v, &str => str::to_string, &String => String::clone);
encode!(Blob, Blob: Vec<u8> => |v| v, &[u8] => <[u8]>::to_vec, &Vec<u8> => Vec::clone);
encode!(Bool, Bool: bool => |v| v);

impl<T: Encode> Encode for Option<T> {
    const KIND: Kind = T::KIND;
    fn encode(self) -> Value {
        match self {
            Some(v) => v.encode(),
            None => Value::Null(T::KIND),
        }
    }
}

/// What a column of a row can be read as. A column holding another type is
/// a decoding error, as in sqlx, except where SQLite stores a type as another
/// (booleans as integers).
pub trait Decode: Sized {
    fn decode(value: &Value) -> Result<Self, String>;
}

fn mismatch<T>(expected: &str, value: &Value) -> Result<T, String> {
    Err(format!("expected {expected}, found {value:?}"))
}

impl Decode for i64 {
    fn decode(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(v) => Ok(*v),
            other => mismatch("an integer", other),
        }
    }
}

impl Decode for i32 {
    fn decode(value: &Value) -> Result<Self, String> {
        let wide = i64::decode(value)?;
        i32::try_from(wide).map_err(|_| format!("{wide} does not fit a 32-bit integer"))
    }
}

impl Decode for f64 {
    fn decode(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => mismatch("a number", other),
        }
    }
}

impl Decode for bool {
    fn decode(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(v) => Ok(*v),
            Value::Int(v) => Ok(*v != 0),
            other => mismatch("a boolean", other),
        }
    }
}

impl Decode for String {
    fn decode(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(v) => Ok(v.clone()),
            other => mismatch("text", other),
        }
    }
}

impl Decode for Vec<u8> {
    fn decode(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(v) => Ok(v.clone()),
            other => mismatch("bytes", other),
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null(_) => Ok(None),
            other => T::decode(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_keeps_its_type_and_decodes_as_none() {
        assert_eq!(None::<&str>.encode(), Value::Null(Kind::Text));
        assert_eq!(None::<i64>.encode(), Value::Null(Kind::Int));
        assert_eq!(Option::<String>::decode(&Value::Null(Kind::Text)), Ok(None));
        assert_eq!(Some("a").encode(), Value::Text("a".into()));
    }

    #[test]
    fn a_column_of_another_type_is_an_error_not_a_guess() {
        assert!(i64::decode(&Value::Text("1".into())).is_err());
        assert!(String::decode(&Value::Int(1)).is_err());
        assert!(i64::decode(&Value::Null(Kind::Int)).is_err());
        assert!(i32::decode(&Value::Int(1 << 40)).is_err());
        assert_eq!(bool::decode(&Value::Int(1)), Ok(true));
    }
}
