//! A serde `Deserializer` over decoded query-string pairs, for `Params<T>`. Written here rather
//! than taken from `serde_urlencoded` for three rules the API has always had: a repeated
//! parameter counts once (the last) unless its field is a `Vec`, an empty value of an optional
//! parameter is as if it were absent, and an error names its parameter (`since: …`).

use std::collections::HashMap;
use std::fmt;

use serde::de::value::{SeqDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;

/// A parameter error: the message of a 400.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// `T` from pairs: each parameter's values in the order given, parameters in order of first
/// appearance (so the first bad parameter of the query string is the one reported).
pub fn deserialize<T: DeserializeOwned>(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<T, String> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in pairs {
        match index.get(&k) {
            Some(&i) => params[i].1.push(v),
            None => {
                index.insert(k.clone(), params.len());
                params.push((k, vec![v]));
            }
        }
    }
    T::deserialize(Pairs {
        params: params.into_iter(),
        value: None,
    })
    .map_err(|e| e.0)
}

struct Pairs {
    params: std::vec::IntoIter<(String, Vec<String>)>,
    /// The parameter whose key was just read: its name (for errors) and values.
    value: Option<(String, Vec<String>)>,
}

impl<'de> de::Deserializer<'de> for Pairs {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Pairs {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((name, values)) = self.params.next() else {
            return Ok(None);
        };
        let key = seed.deserialize(StringDeserializer::<Error>::new(name.clone()))?;
        self.value = Some((name, values));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (name, values) = self
            .value
            .take()
            .ok_or_else(|| Error("a value without its parameter".into()))?;
        seed.deserialize(Values(values))
            .map_err(|e| Error(format!("{name}: {}", e.0)))
    }
}

/// One parameter's values (at least one).
struct Values(Vec<String>);

impl Values {
    fn last(mut self) -> String {
        self.0.pop().unwrap_or_default()
    }
}

impl<'de> de::Deserializer<'de> for Values {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.last())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.last().is_none_or(|v| v.is_empty()) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(SeqDeserializer::<_, Error>::new(self.0.into_iter()))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.last()
            .into_deserializer()
            .deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct map struct identifier
    }
}
