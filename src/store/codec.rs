//! The encoding of stored values: one version byte, then MessagePack with named fields.
//!
//! Named fields make the encoding self-describing, so a record type can gain optional fields
//! (`#[serde(default)]`) without a migration; the version byte is for the changes that cannot be
//! expressed that way, and `Record::upgrade` reads the older layouts.

use std::borrow::Borrow;

use redb::{Key, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

use super::{Source, StoreError};

/// A value stored in a table.
pub trait Record: Serialize + DeserializeOwned {
    /// Names the record in error messages.
    const KIND: &'static str;
    /// The layout version written by this build.
    const VERSION: u8 = 1;

    /// Reads a value written with an older layout version. No older layouts exist yet.
    fn upgrade(version: u8, _body: &[u8]) -> Result<Self, StoreError> {
        Err(StoreError::Corrupt { kind: Self::KIND, message: format!("unknown layout version {version}") })
    }
}

pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![R::VERSION];
    rmp_serde::encode::write_named(&mut out, record)
        .map_err(|err| StoreError::Corrupt { kind: R::KIND, message: err.to_string() })?;
    Ok(out)
}

pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, StoreError> {
    match bytes.split_first() {
        Some((&version, body)) if version == R::VERSION => rmp_serde::from_slice(body)
            .map_err(|err| StoreError::Corrupt { kind: R::KIND, message: err.to_string() }),
        Some((&version, body)) => R::upgrade(version, body),
        None => Err(StoreError::Corrupt { kind: R::KIND, message: "empty value".into() }),
    }
}

/// The record stored under `key` in a table of encoded records, decoded.
pub fn get<'k, K: Key + 'static, R: Record>(
    src: &impl Source,
    table: TableDefinition<'static, K, &'static [u8]>,
    key: impl Borrow<K::SelfType<'k>>,
) -> Result<Option<R>, StoreError> {
    let table = src.table(table)?;
    let value = table.get(key)?;
    value.map(|v| decode(v.value())).transpose()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V1 {
        name: String,
    }
    impl Record for V1 {
        const KIND: &'static str = "test";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V1WithOptionalField {
        name: String,
        #[serde(default)]
        nickname: Option<String>,
    }
    impl Record for V1WithOptionalField {
        const KIND: &'static str = "test";
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V2 {
        full_name: String,
    }
    impl Record for V2 {
        const KIND: &'static str = "test";
        const VERSION: u8 = 2;
        fn upgrade(version: u8, body: &[u8]) -> Result<Self, StoreError> {
            match version {
                1 => {
                    let old: V1 = rmp_serde::from_slice(body)
                        .map_err(|e| StoreError::Corrupt { kind: Self::KIND, message: e.to_string() })?;
                    Ok(V2 { full_name: old.name })
                }
                _ => Err(StoreError::Corrupt { kind: Self::KIND, message: "unknown".into() }),
            }
        }
    }

    #[test]
    fn round_trips() {
        let value = V1 { name: "Ada".into() };
        assert_eq!(decode::<V1>(&encode(&value).unwrap()).unwrap(), value);
    }

    #[test]
    fn an_added_optional_field_reads_old_values() {
        let old = encode(&V1 { name: "Ada".into() }).unwrap();
        let new: V1WithOptionalField = decode(&old).unwrap();
        assert_eq!(new, V1WithOptionalField { name: "Ada".into(), nickname: None });
    }

    #[test]
    fn an_older_layout_is_upgraded() {
        let old = encode(&V1 { name: "Ada".into() }).unwrap();
        assert_eq!(decode::<V2>(&old).unwrap(), V2 { full_name: "Ada".into() });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<V1>(&[]).is_err());
        assert!(decode::<V1>(&[1, 0xc1, 0xff]).is_err());
        assert!(decode::<V1>(&[9, 1, 2]).is_err());
    }
}
