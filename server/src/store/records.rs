//! Typed keyed records: small values that features own (the egress outbox, stored channel
//! send answers, sent-message receipts). A feature declares its value type once as a
//! [`Record`] — its kind and its key — and reads and writes it through [`Records`] and
//! [`RecordsMut`]; the encoding (JSON) lives here, so no user hand-rolls codecs or kind
//! strings, and the backend sees only opaque [`Encoded`] bytes under `(kind, key)`.

use super::{Reader, Txn};
use crate::error::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};

/// A value stored by key under its own kind.
pub trait Record: Serialize + DeserializeOwned {
    /// The key space of this type. Never reuse one for another shape: old rows would stop
    /// decoding; a changed shape takes a new kind (old rows are then simply never read).
    const KIND: &'static str;
    /// The record's key within its kind; scans visit keys in byte order.
    fn key(&self) -> String;
    /// True when retention prunes this kind by age: the store then notes when each record
    /// was last written (`retention.*` names the age).
    const TIMED: bool = false;
}

/// A record's stored bytes. Only the store makes and reads them, so the typed methods
/// below are the one way in.
pub struct Encoded(pub(super) Vec<u8>);

fn encode<R: Record>(rec: &R) -> Result<Encoded> {
    serde_json::to_vec(rec)
        .map(Encoded)
        .map_err(|e| Error::Internal(format!("encode a {} record: {e}", R::KIND)))
}

fn decode<R: Record>(bytes: &Encoded) -> Result<R> {
    serde_json::from_slice(&bytes.0)
        .map_err(|e| Error::Storage(format!("decode a {} record: {e}", R::KIND)))
}

/// Records read a page at a time by [`Records::each`].
const PAGE: usize = 256;

/// Typed reads of records, on write transactions and read snapshots alike.
pub trait Records: Reader {
    /// The record of `R` under `key`.
    fn get<R: Record>(&self, key: &str) -> Result<Option<R>> {
        self.raw_get(R::KIND, key)?.map(|b| decode(&b)).transpose()
    }

    /// True when a record of `R` is stored under `key` (without decoding it).
    fn contains<R: Record>(&self, key: &str) -> Result<bool> {
        Ok(self.raw_get(R::KIND, key)?.is_some())
    }

    /// Records of `R` with keys greater than `after` (all when empty), in key order, at
    /// most `limit`.
    fn scan<R: Record>(&self, after: &str, limit: usize) -> Result<Vec<R>> {
        self.raw_scan(R::KIND, after, limit)?
            .iter()
            .map(|(_, b)| decode(b))
            .collect()
    }

    /// Visits every record of `R` in key order, a page at a time.
    fn each<R: Record>(&self, mut f: impl FnMut(R)) -> Result<()> {
        let mut after = String::new();
        loop {
            let page = self.raw_scan(R::KIND, &after, PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = last.clone();
            for (_, b) in &page {
                f(decode(b)?);
            }
        }
    }
}

impl<T: Reader + ?Sized> Records for T {}

/// Typed writes of records, inside [`super::Store::write`].
pub trait RecordsMut: Txn {
    /// Inserts or replaces `rec` under its key.
    fn put<R: Record>(&mut self, rec: &R) -> Result<()> {
        let bytes = encode(rec)?;
        self.raw_put(R::KIND, &rec.key(), &bytes, R::TIMED)
    }

    /// Deletes the record of `R` under `key`; true when it existed.
    fn delete<R: Record>(&mut self, key: &str) -> Result<bool> {
        self.raw_delete(R::KIND, key)
    }
}

impl<T: Txn + ?Sized> RecordsMut for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Fruit {
        name: String,
        n: u32,
    }
    impl Record for Fruit {
        const KIND: &'static str = "test.fruit";
        fn key(&self) -> String {
            self.name.clone()
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Tool(String);
    impl Record for Tool {
        const KIND: &'static str = "test.tool";
        fn key(&self) -> String {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn kinds_keep_their_own_key_space_and_order() {
        let dir = std::env::temp_dir().join(format!("clawplane-records-{}", uuid::Uuid::new_v4()));
        let store =
            super::super::open(&crate::config::StorageConfig::default(), &dir, 0, 16).unwrap();
        store
            .write(|t| {
                for (name, n) in [("pear", 2), ("apple", 1), ("quince", 3)] {
                    t.put(&Fruit {
                        name: name.into(),
                        n,
                    })?;
                }
                t.put(&Tool("axe".into()))?;
                t.put(&Fruit {
                    name: "pear".into(),
                    n: 20,
                })
            })
            .await
            .unwrap();
        store
            .read(|r| {
                let names: Vec<_> = r.scan::<Fruit>("", 10)?.into_iter().map(|f| f.n).collect();
                assert_eq!(names, [1, 20, 3]);
                assert_eq!(r.scan::<Fruit>("apple", 1)?[0].name, "pear");
                let mut tools = Vec::new();
                r.each::<Tool>(|t| tools.push(t.0))?;
                assert_eq!(tools, ["axe"]);
                assert!(r.get::<Fruit>("axe")?.is_none() && r.contains::<Tool>("axe")?);
                Ok(())
            })
            .unwrap();
        assert!(store.write(|t| t.delete::<Fruit>("pear")).await.unwrap());
        assert!(!store.write(|t| t.delete::<Fruit>("pear")).await.unwrap());
        assert!(store.read(|r| r.get::<Fruit>("pear")).unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
