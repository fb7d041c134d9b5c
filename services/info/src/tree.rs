//! The audit log as a Merkle tree (issue 15, the transparency log's first
//! part): leaf `i` is the audit record of sequence number `i + 1`, hashed
//! as RFC 9162 hashes a leaf (`HASH(0x00 || the record's JSON)`, the bytes
//! the store keeps and `shikko audit export` writes). Every perfect
//! subtree's hash is stored (`m/`, level, index) in the same synced batch
//! as the record that completes it, so any tree head, inclusion proof or
//! consistency proof takes O(log n) reads however long the log is.
//!
//! The writer keeps the tree's right edge in memory ([`Edge`]): for each
//! level, the last complete subtree still waiting for its right sibling.

use shikko_core::merkle::{self, Hash, Nodes};
use shikko_pki::merkle::Sha256;
use shikko_store::Store;

use crate::audit::AuditRecord;
use crate::error::InfoError;
use crate::keys;

/// The leaf hash of a record's stored JSON.
pub fn leaf(record_json: &[u8]) -> Hash {
    merkle::leaf_hash::<Sha256>(record_json)
}

/// The leaf hash of a record (as exported).
pub fn leaf_of(record: &AuditRecord) -> Result<Hash, InfoError> {
    let json = serde_json::to_vec(record).map_err(|e| InfoError::Internal(e.to_string()))?;
    Ok(leaf(&json))
}

/// The right edge of the tree of `size` leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Edge {
    size: u64,
    /// `waiting[l]`: the hash of the complete subtree of level `l` that is
    /// a left child whose sibling is not complete yet (bit `l` of `size`).
    waiting: Vec<Option<Hash>>,
}

impl Edge {
    /// Appends a leaf: the node writes it completes go into `puts`.
    pub(crate) fn append(&mut self, leaf: Hash, puts: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        let mut index = self.size;
        let mut level = 0usize;
        let mut hash = leaf;
        puts.push((keys::tree_node(0, index), hash.to_vec()));
        while index & 1 == 1 {
            let left = self
                .waiting
                .get_mut(level)
                .and_then(Option::take)
                .unwrap_or_else(|| unreachable!("a right child's left sibling is waiting"));
            hash = merkle::node_hash::<Sha256>(&left, &hash);
            index >>= 1;
            level += 1;
            puts.push((keys::tree_node(level as u8, index), hash.to_vec()));
        }
        if self.waiting.len() <= level {
            self.waiting.resize(level + 1, None);
        }
        self.waiting[level] = Some(hash);
        self.size += 1;
    }

    /// The edge of the stored tree of `size` leaves. A log written before
    /// the tree (records without nodes) has its nodes written now, once.
    pub(crate) fn load(store: &Store, size: u64) -> Result<Edge, InfoError> {
        if size == 0 {
            return Ok(Edge::default());
        }
        let nodes = StoredNodes(store);
        if store.info_get(&keys::tree_node(0, size - 1))?.is_none() {
            return Edge::build(store, size);
        }
        let mut edge = Edge {
            size,
            waiting: Vec::new(),
        };
        for level in 0..64u32 {
            if (size >> level) & 1 == 1 {
                let hash = nodes.perfect(level, (size >> level) - 1)?;
                edge.waiting.resize(level as usize + 1, None);
                edge.waiting[level as usize] = Some(hash);
            }
        }
        Ok(edge)
    }

    /// Writes the nodes of the first `size` records, which have none.
    fn build(store: &Store, size: u64) -> Result<Edge, InfoError> {
        tracing::info!(records = size, "building the audit log's Merkle tree");
        let mut edge = Edge::default();
        let mut next = 1;
        while edge.size < size {
            let page = store.info_scan(keys::AUDIT_PREFIX, &keys::audit(next), 10_000)?;
            if page.is_empty() {
                return Err(InfoError::Corrupt(
                    "the audit log has fewer records than its head",
                ));
            }
            let mut puts = Vec::with_capacity(page.len() * 2);
            for (_, v) in page.iter().take((size - edge.size) as usize) {
                edge.append(leaf(v), &mut puts);
            }
            next = edge.size + 1;
            store.info_write(&puts)?;
        }
        Ok(edge)
    }
}

/// Writes the tree nodes of `leaves` appended to the stored tree of `size`
/// leaves (nodes only, no records), in batches; returns the new size. For
/// benchmarks of proofs at sizes whose records would not fit a test
/// machine (`examples/audit_proofs.rs`); the service's writer appends
/// nodes with their records.
pub fn append_nodes(
    store: &Store,
    size: u64,
    leaves: impl IntoIterator<Item = Hash>,
) -> Result<u64, InfoError> {
    let mut edge = Edge::load(store, size)?;
    let mut puts = Vec::with_capacity(200_000);
    for leaf in leaves {
        edge.append(leaf, &mut puts);
        if puts.len() >= 100_000 {
            store.info_write(&puts)?;
            puts.clear();
        }
    }
    store.info_write(&puts)?;
    Ok(edge.size)
}

/// The stored tree as a [`Nodes`] source.
#[derive(Debug, Clone, Copy)]
pub struct StoredNodes<'s>(pub &'s Store);

impl Nodes for StoredNodes<'_> {
    type Error = InfoError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, InfoError> {
        let level = u8::try_from(level).map_err(|_| InfoError::Corrupt("a tree level past 255"))?;
        let v = self
            .0
            .info_get(&keys::tree_node(level, index))?
            .ok_or(InfoError::Corrupt(
                "a Merkle tree node of the audit log is missing",
            ))?;
        v.try_into()
            .map_err(|_| InfoError::Corrupt("a Merkle tree node is not 32 octets"))
    }
}

/// The head of the tree of the first `size` records.
pub fn head(store: &Store, size: u64) -> Result<Hash, InfoError> {
    merkle::root::<Sha256, _>(&StoredNodes(store), size)
}

/// The inclusion proof of the record of sequence number `seq` in the tree
/// of the first `size` records.
pub fn inclusion(store: &Store, seq: u64, size: u64) -> Result<Vec<Hash>, InfoError> {
    if seq == 0 || seq > size {
        return Err(InfoError::Corrupt("no such record in a tree of that size"));
    }
    merkle::inclusion_proof::<Sha256, _>(&StoredNodes(store), seq - 1, size)
}

/// The consistency proof of the tree of `old` records with the tree of `size`.
pub fn consistency(store: &Store, old: u64, size: u64) -> Result<Vec<Hash>, InfoError> {
    merkle::consistency_proof::<Sha256, _>(&StoredNodes(store), old, size)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shikko_core::merkle::{LeafHashes, verify_consistency, verify_inclusion};

    fn record(i: u64) -> Vec<u8> {
        format!("{{\"seq\":{i}}}").into_bytes()
    }

    /// `n` records written as the writer writes them (record and nodes in one batch).
    fn append(store: &Store, edge: &mut Edge, from: u64, to: u64) {
        for i in from..=to {
            let mut puts = vec![(keys::audit(i), record(i))];
            edge.append(leaf(&record(i)), &mut puts);
            store.info_write(&puts).unwrap();
        }
    }

    #[test]
    fn stored_heads_and_proofs_are_those_of_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut edge = Edge::default();
        append(&store, &mut edge, 1, 40);
        let reference = LeafHashes::<Sha256>::new((1..=40).map(|i| leaf(&record(i))).collect());
        for n in 1..=40u64 {
            let h = head(&store, n).unwrap();
            assert_eq!(
                h,
                merkle::root::<Sha256, _>(&reference, n).unwrap(),
                "size {n}"
            );
            for seq in 1..=n {
                let p = inclusion(&store, seq, n).unwrap();
                verify_inclusion::<Sha256>(seq - 1, n, &leaf(&record(seq)), &p, &h).unwrap();
            }
            for old in 1..n {
                let p = consistency(&store, old, n).unwrap();
                verify_consistency::<Sha256>(old, n, &head(&store, old).unwrap(), &h, &p).unwrap();
            }
        }
        // The edge read back from the store goes on where the writer's was.
        let loaded = Edge::load(&store, 40).unwrap();
        assert_eq!(loaded, edge);
    }

    #[test]
    fn a_log_written_before_the_tree_gets_its_nodes_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Records only, as an earlier version wrote them.
        let puts: Vec<_> = (1..=23).map(|i| (keys::audit(i), record(i))).collect();
        store.info_write(&puts).unwrap();
        let mut edge = Edge::load(&store, 23).unwrap();
        append(&store, &mut edge, 24, 30);
        let reference = LeafHashes::<Sha256>::new((1..=30).map(|i| leaf(&record(i))).collect());
        assert_eq!(
            head(&store, 30).unwrap(),
            merkle::root::<Sha256, _>(&reference, 30).unwrap()
        );
        assert!(inclusion(&store, 31, 30).is_err());
    }
}
