//! The keyspace of the 4-information service (operators, consents, audit
//! log, billing counters): opaque keys and values, written atomically and
//! synced. The `shikko-info` crate owns their layout.

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use crate::{Result, Store, cf};

impl Store {
    /// A value of the 4-information keyspace.
    pub fn info_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf::INFO), key)?)
    }

    /// The entries whose key starts with `prefix`, in key order, from the
    /// first key at or after `start` (give `prefix` to start at the first),
    /// at most `limit` of them.
    pub fn info_scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let from = if start < prefix { prefix } else { start };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(cf::INFO),
            IteratorMode::From(from, Direction::Forward),
        ) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    /// The last entry (greatest key) whose key starts with `prefix`.
    pub fn info_last(&self, prefix: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        // Seek to just past the prefix, then step back.
        let mut end = prefix.to_vec();
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                break;
            }
        }
        let mode = if end.is_empty() {
            IteratorMode::End
        } else {
            IteratorMode::From(&end, Direction::Reverse)
        };
        for item in self.db.iterator_cf(self.cf(cf::INFO), mode) {
            let (k, v) = item?;
            if k.starts_with(prefix) {
                return Ok(Some((k.into_vec(), v.into_vec())));
            }
            if k.as_ref() < prefix {
                break;
            }
        }
        Ok(None)
    }

    /// Writes every `(key, value)` in one atomic batch, synced to the
    /// write-ahead log before it returns: what it acknowledges survives a crash.
    pub fn info_write(&self, puts: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        let family = self.cf(cf::INFO);
        for (k, v) in puts {
            batch.put_cf(family, k, v);
        }
        let mut w = WriteOptions::default();
        w.set_sync(true);
        Ok(self.db.write_opt(batch, &w)?)
    }

    /// Deletes the keys `from <= key < to` (a range tombstone, compacted
    /// away later): for pruning records whose keys sort by time. Not synced:
    /// a crash at worst keeps what was to be pruned.
    pub fn info_delete_range(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(cf::INFO), from, to);
        Ok(self.db.write(batch)?)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn scans_stay_in_their_prefix_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.info_write(&[
                (b"a/1".to_vec(), b"one".to_vec()),
                (b"a/2".to_vec(), b"two".to_vec()),
                (b"a/3".to_vec(), b"three".to_vec()),
                (b"b/1".to_vec(), b"other".to_vec()),
            ])
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.info_get(b"a/2").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(s.info_get(b"a/4").unwrap(), None);
        let all = s.info_scan(b"a/", b"a/", 10).unwrap();
        assert_eq!(all.len(), 3);
        let from2 = s.info_scan(b"a/", b"a/2", 1).unwrap();
        assert_eq!(from2, vec![(b"a/2".to_vec(), b"two".to_vec())]);
        assert_eq!(s.info_last(b"a/").unwrap().unwrap().0, b"a/3".to_vec());
        assert_eq!(s.info_last(b"b/").unwrap().unwrap().0, b"b/1".to_vec());
        assert_eq!(s.info_last(b"c/").unwrap(), None);
        assert_eq!(s.info_last(b"0").unwrap(), None);
    }
}
