//! Struct decoding that reads JSON objects only, for a smaller wasm.
//!
//! A derived `Deserialize` asks for `deserialize_struct`, and serde_json's answers both a JSON
//! object (`visit_map`) and a JSON array of the fields in order (`visit_seq`), so every struct
//! read with serde_json carried a second decoder, for a shape this service never writes and
//! Stripe never sends; and each derived visitor had its own copy of every field's read, its
//! duplicate check and its move into place. No struct derives `Deserialize` now:
//! [`decode_map!`] writes its visitor from a list of its fields (key, and what a missing one
//! is), asks for `deserialize_map`, reads every key with one seed ([`KeyIndex`]: the key's
//! position in the struct's field names, one matcher for every struct) and every value in
//! place with [`field`], compiled once per field type. Objects decode as the derive decoded them (the same keys, defaults, unknown keys
//! skipped or refused, the same `duplicate field`, `missing field` and `unknown field`
//! errors); an array where a struct is expected is refused (`invalid type: sequence, expected
//! struct …`). Not for a struct decoded under `#[serde(flatten)]` (none is).
//!
//! The webhook envelope's borrowed `Object<'a>` (`event::thin`) is written the same way by
//! hand: the macro takes no lifetime.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Serialize;
use serde_json::Value;

/// `serde_json::to_value` (and what `json!` does with a non-literal field), through the text:
/// the same `Value` for integers, strings and maps (keys sorted, as `Map` keeps them; they
/// round-trip through JSON text exactly; a float may not, `float_roundtrip` being off, so it
/// is for types without float fields, as every caller's is), from each type's one JSON
/// encoder, the one that writes it to KV, instead of a second encoder per type for
/// serde_json's `Value` serializer, and that serializer too (bench/RESULTS.md, notes).
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, serde_json::Error> {
    value_of_text(&serde_json::to_string(value)?)
}

/// The generic part of [`to_value`] kept to the encoder's call: this is compiled once.
#[inline(never)]
fn value_of_text(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text)
}

/// The message of an error met decoding a value nested in a larger text (an `Expandable`'s
/// object, a queue answer's result), without its " at line L column C": serde_json would take
/// that suffix for its own and report the position within the nested value, not the text the
/// caller sent. Without it, the outer reader adds the position of the value in that text.
pub fn nested_error(error: serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) if error.line() != 0 => message.to_owned(),
        _ => text,
    }
}

/// A map key as its position in a struct's field names, `fields.len()` for another key (or
/// the derive's `unknown field …, expected …` error when `deny`): one matcher compiled for
/// every struct, where each had its own chain of string comparisons.
#[derive(Clone, Copy)]
pub struct KeyIndex {
    pub fields: &'static [&'static str],
    pub deny: bool,
}

impl<'de> DeserializeSeed<'de> for KeyIndex {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIndex {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<usize, E> {
        match self.fields.iter().position(|field| *field == key) {
            Some(index) => Ok(index),
            None if self.deny => Err(E::unknown_field(key, self.fields)),
            None => Ok(self.fields.len()),
        }
    }
}

/// Reads the value of the field `name` into its `slot`, or refuses it as a second one (as the
/// derive does, before reading it). Compiled once per field type, not once per struct: the
/// value is read into the slot in place, where the derive moved it there field by field.
pub fn field<'de, A, T>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &'static str,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: serde::Deserialize<'de>,
{
    if slot.is_some() {
        return Err(serde::de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// A field without a default, once [`decode_map!`] has refused a missing one (`missing
/// field`, for the first in the struct's order, as the derive did).
pub fn present<T>(slot: Option<T>) -> T {
    match slot {
        Some(value) => value,
        None => unreachable!("decode_map! refuses a missing field first"),
    }
}

/// Implements `Deserialize` for a struct from a JSON object, by a visitor that matches each
/// key and reads its value with [`field`]: what the derive did with a map-only deserializer
/// (the same keys, unknown ones skipped, the same `duplicate field` and `missing field`
/// errors, `expected struct …` for anything but an object), in less code per struct.
/// Each field is `name: "key" required` (refused when missing), `default` (its `Default`
/// when missing, as `#[serde(default)]`; an `Option` without it is `None` too), `default with
/// W` (read as `W`, a newtype over the field's type: `deserialize_with`) or `default = f`
/// (`f()` when missing: `#[serde(default = "f")]`). `deny_unknown_fields` before the braces
/// refuses an unknown key as the derive did (`unknown field …, expected …`); `skip { a, b }`
/// after them names the fields never read (`#[serde(skip)]`: their `Default`).
macro_rules! decode_map {
    ($t:ident { $($fields:tt)* } $(skip { $($skip:ident),* $(,)? })?) => {
        $crate::json::decode_map!(@impl $t ignore { $($fields)* } { $($($skip)*)? });
    };
    ($t:ident deny_unknown_fields { $($fields:tt)* }) => {
        $crate::json::decode_map!(@impl $t deny { $($fields)* } {});
    };
    (@impl $t:ident $unknown:ident {
        $($field:ident : $key:literal $mode:ident $(with $w:ty)? $(= $f:path)?),* $(,)?
    } { $($skip:ident)* }) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Fields;
                impl<'de> serde::de::Visitor<'de> for Fields {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($t)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$t, A::Error> {
                        $(let mut $field $(: Option<$w>)? = None;)*
                        // The slots are borrowed, not moved, by the reading: one place drops
                        // them on an error, not one per `?` (each with its own drop code).
                        let mut read = || -> Result<(), A::Error> {
                            let keys = $crate::json::KeyIndex {
                                fields: &[$($key),*],
                                deny: $crate::json::decode_map!(@deny $unknown),
                            };
                            while let Some(index) = map.next_key_seed(keys)? {
                                // The field at `index`, counted down: no string compared here.
                                let mut at = index;
                                $(
                                    if at == 0 {
                                        $crate::json::field(&mut map, &mut $field, $key)?;
                                        continue;
                                    }
                                    at -= 1;
                                )*
                                let _ = at;
                                map.next_value::<serde::de::IgnoredAny>()?;
                            }
                            let missing = None$(.or($crate::json::decode_map!(@missing $mode $field $key)))*;
                            match missing {
                                Some(name) => Err(serde::de::Error::missing_field(name)),
                                None => Ok(()),
                            }
                        };
                        read()?;
                        Ok($t {
                            $($field: $crate::json::decode_map!(
                                @finish $mode $field $key [$($w)?] [$($f)?]
                            ),)*
                            $($skip: Default::default(),)*
                        })
                    }
                }
                deserializer.deserialize_map(Fields)
            }
        }
    };
    (@deny ignore) => {
        false
    };
    (@deny deny) => {
        true
    };
    (@missing required $field:ident $key:literal) => {
        $field.is_none().then_some($key)
    };
    (@missing default $field:ident $key:literal) => {
        None
    };
    (@finish required $field:ident $key:literal [] []) => {
        $crate::json::present($field)
    };
    (@finish default $field:ident $key:literal [] []) => {
        $field.unwrap_or_default()
    };
    (@finish default $field:ident $key:literal [$w:ty] []) => {
        $field.map(|wrapped| wrapped.0).unwrap_or_default()
    };
    (@finish default $field:ident $key:literal [] [$f:path]) => {
        $field.unwrap_or_else($f)
    };
}
pub(crate) use decode_map;

#[cfg(test)]
mod tests {
    use serde::Serialize;

    #[derive(Debug, PartialEq)]
    struct Pair {
        a: u32,
        b: Option<String>,
    }
    crate::json::decode_map!(Pair {
        a: "a" required,
        b: "b" default,
    });

    #[test]
    fn a_struct_reads_from_an_object_with_unknown_and_missing_fields() {
        let pair: Pair = serde_json::from_str(r#"{"z":[1,{"q":2}],"a":7}"#).unwrap();
        assert_eq!(pair, Pair { a: 7, b: None });
        let value = serde_json::json!({"a": 1, "b": "x"});
        let pair: Pair = serde_json::from_value(value).unwrap();
        assert_eq!(pair.b.as_deref(), Some("x"));
    }

    #[test]
    fn to_value_through_the_text_gives_serde_jsons_value() {
        #[derive(Serialize)]
        struct Mixed {
            big: u64,
            negative: i64,
            float: f64,
            tiny: f64,
            text: &'static str,
            none: Option<u8>,
            list: Vec<Option<bool>>,
            map: std::collections::BTreeMap<u32, &'static str>,
        }
        let mixed = Mixed {
            big: u64::MAX,
            negative: i64::MIN,
            float: 0.1 + 0.2,
            tiny: 5e-324,
            text: "é \" \\ \u{1}",
            none: None,
            list: vec![Some(true), None],
            map: [(7, "seven")].into(),
        };
        assert_eq!(
            super::to_value(&mixed).unwrap(),
            serde_json::to_value(&mixed).unwrap()
        );
    }

    #[derive(Debug, PartialEq)]
    struct Strict {
        kind: String,
    }
    crate::json::decode_map!(Strict deny_unknown_fields {
        kind: "type" required,
    });

    #[test]
    fn keys_with_escapes_are_matched_and_unknown_ones_named() {
        let pair: Pair = serde_json::from_str(r#"{"\u0061":1,"b":"\u00e9"}"#).unwrap();
        assert_eq!(
            pair,
            Pair {
                a: 1,
                b: Some("é".into())
            }
        );
        let strict: Strict = serde_json::from_str(r#"{"t\u0079pe":"x"}"#).unwrap();
        assert_eq!(strict.kind, "x");
        let error = serde_json::from_str::<Strict>(r#"{"type":"x","kind":1}"#).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown field `kind`, expected `type`"),
            "{error}"
        );
    }

    fn seven() -> u32 {
        7
    }

    /// Newtype over a field's type, as `deserialize_with` fields are read.
    struct Doubled(u32);

    impl<'de> serde::Deserialize<'de> for Doubled {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            u32::deserialize(deserializer).map(|n| Self(n * 2))
        }
    }

    #[derive(Debug, PartialEq)]
    struct Modes {
        plain: u32,
        given: u32,
        doubled: u32,
        skipped: Option<String>,
    }
    crate::json::decode_map!(Modes {
        plain: "plain" default,
        given: "given" default = seven,
        doubled: "doubled" default with Doubled,
    } skip { skipped });

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Closed {
        a: Option<u32>,
        b: Option<u32>,
    }
    crate::json::decode_map!(Closed deny_unknown_fields {
        a: "a" default,
        b: "b" default,
    });

    #[test]
    fn defaults_skipped_fields_and_read_as_types_match_the_derive() {
        let none: Modes = serde_json::from_str("{}").unwrap();
        let expected = Modes {
            plain: 0,
            given: 7,
            doubled: 0,
            skipped: None,
        };
        assert_eq!(none, expected);
        let all: Modes =
            serde_json::from_str(r#"{"plain":1,"given":2,"doubled":3,"skipped":"x"}"#).unwrap();
        let expected = Modes {
            plain: 1,
            given: 2,
            doubled: 6,
            skipped: None,
        };
        assert_eq!(all, expected);
        // The derive's errors, positions included (an array is refused, as before: above).
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Derived {
            a: Option<u32>,
            b: Option<u32>,
        }
        for text in [r#"{"a":1,"c":2}"#, r#"{"a":1,"a":2}"#, r#"{"b":1,"a":"x"}"#] {
            let ours = serde_json::from_str::<Closed>(text)
                .unwrap_err()
                .to_string();
            let derived = serde_json::from_str::<Derived>(text)
                .unwrap_err()
                .to_string();
            assert_eq!(
                ours,
                derived.replace("struct Derived", "struct Closed"),
                "{text}"
            );
        }
        let error = serde_json::from_str::<Closed>(r#"{"a":1,"c":2}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown field `c`, expected `a` or `b` at line 1 column 10"
        );
    }

    #[test]
    fn a_struct_is_not_read_from_an_array_and_its_errors_are_unchanged() {
        let error = serde_json::from_str::<Pair>(r#"[7,"x"]"#).unwrap_err();
        assert!(
            error.to_string().contains("expected struct Pair"),
            "{error}"
        );
        let error = serde_json::from_str::<Pair>(r#"{"b":"x"}"#).unwrap_err();
        assert!(
            error.to_string().starts_with("missing field `a`"),
            "{error}"
        );
        let error = serde_json::from_str::<Pair>(r#"{"a":1,"a":2}"#).unwrap_err();
        assert!(
            error.to_string().starts_with("duplicate field `a`"),
            "{error}"
        );
    }
}
