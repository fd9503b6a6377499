//! The values `source` and `params` hold beyond plain JSON: secrets that never print,
//! pattern lists given as a string or a list, and settings given as a string or a number.

use super::*;

/// A secret string: never printed by `Debug`, nor by a deserialisation error (a number given
/// for a secret key is still the key: the error names the field and the type, not the value).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error as _, IgnoredAny};
        // Whatever it is, read it whole and say only that it is not a string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Text(String),
            Other(IgnoredAny),
        }
        match Any::deserialize(d) {
            Ok(Any::Text(s)) => Ok(Secret(s)),
            _ => Err(D::Error::custom(
                "expected a string (the value given is not shown: it is a secret)",
            )),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One pattern string (space-separated) or a list of patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternList {
    /// `"src/** package.json"`
    Spaced(String),
    /// `["src/**", "package.json"]`
    List(Vec<String>),
}

// By hand rather than `#[serde(untagged)]`, whose only message for a wrong type is "data did
// not match any variant of untagged enum PatternList".
impl<'de> Deserialize<'de> for PatternList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PatternList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<PatternList, E> {
                Ok(PatternList::Spaced(s.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PatternList, A::Error> {
                let mut list = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    list.push(p);
                }
                Ok(PatternList::List(list))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A setting written as a string or a number (`"16M"`, `256`), as its task variable's text.
#[derive(Debug, Clone)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text(s.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}
