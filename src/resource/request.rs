//! A request on stdin, parsed into its type; an unknown key is told by where serde found it.

use super::*;

/// A request the binaries read on stdin. The keys each of its objects takes are known (from
/// the types), so an error about a key none of them takes is recognised by where it is.
pub(crate) trait Request: serde::de::DeserializeOwned {
    /// Its `params` (`()` for `check`, which takes none).
    type Params: serde::de::DeserializeOwned;
}

impl Request for CheckRequest {
    type Params = ();
}

impl Request for InRequest {
    type Params = InParams;
}

impl Request for OutRequest {
    type Params = OutParams;
}

/// The keys a struct that derives `Deserialize` takes, aliases included: the list its
/// `Deserialize` hands [`serde::Deserializer::deserialize_struct`], read by a deserializer
/// that stops there. Empty for anything else.
pub(super) fn keys_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    type Stop = serde::de::value::Error;
    struct Keys<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Keys<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop::custom("read its keys"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(Keys(&mut keys));
    keys
}

/// The key an error's `path` ends at, when the object holding it (the request, its
/// `source`, `version` or `params`) does not take it, with the keys that object takes.
pub(super) fn unknown_key<T: Request>(
    path: &serde_path_to_error::Path,
) -> Option<(&str, &'static [&'static str])> {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let (Segment::Map { key }, parent) = segments.split_last()? else {
        return None;
    };
    let keys = match parent {
        [] => keys_of::<T>(),
        [Segment::Map { key: part }] => match part.as_str() {
            "source" => keys_of::<Source>(),
            "version" => keys_of::<Version>(),
            "params" => keys_of::<T::Params>(),
            _ => return None,
        },
        _ => return None,
    };
    (!keys.contains(&key.as_str())).then_some((key.as_str(), keys))
}

/// Parses a request, turning serde's message into one actionable line.
pub(crate) fn parse_request<T: Request>(input: &str) -> Result<T> {
    let invalid = |why: &str| {
        Error::Config(format!(
            "invalid payload: {}; see the README's \"Concourse resource\" section for the source and params keys",
            tidy(why)
        ))
    };
    // serde reads a struct from a JSON array too (its fields in order), so `[{"bucket": ...}]`
    // would pass for a request and `"params": [true, true]` for params: every request and
    // each of its parts is an object.
    let value: serde_json::Value =
        serde_json::from_str(input).map_err(|e| invalid(&e.to_string()))?;
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    };
    let Some(top) = value.as_object() else {
        return Err(invalid(&format!(
            "the request must be a JSON object such as {{\"source\": {{\"bucket\": ...}}}}, not {}",
            kind(&value)
        )));
    };
    for key in ["source", "version", "params"] {
        if let Some(v) = top.get(key).filter(|v| v.is_array()) {
            return Err(invalid(&format!(
                "`{key}` must be a JSON object, not {}",
                kind(v)
            )));
        }
    }
    // serde_path_to_error names the field a type error is about (`source.use_path_style`),
    // which serde_json's own message leaves to a line and column.
    let mut de = serde_json::Deserializer::from_str(input);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let unknown = unknown_key::<T>(e.path()).map(|(key, keys)| (key.to_string(), keys));
        let e = e.into_inner();
        let text = match unknown {
            // serde lists the keys it expected after an unknown one: one or two read well
            // (expected `repo` or `path`); of a longer list, the key itself is what matters.
            Some((key, keys)) if e.classify() == Category::Data && keys.len() > 2 => {
                match e.line() {
                    0 => format!("unknown field `{key}`"),
                    line => format!("unknown field `{key}` at line {line} column {}", e.column()),
                }
            }
            _ => e.to_string(),
        };
        match path.as_str() {
            "" | "." => invalid(&text),
            _ => invalid(&format!("`{path}`: {text}")),
        }
    })
}

/// serde's message on one line, with the values it echoes (a key, a string) clipped.
pub(super) fn tidy(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = clip_quoted(&s, &['"', '`']);
    if s.chars().count() > 240 {
        s.chars().take(240).collect::<String>() + "…"
    } else {
        s
    }
}
