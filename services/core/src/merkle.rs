//! The Merkle tree of a transparency log (RFC 9162 §2.1, the structure of
//! RFC 6962): leaf and node hashing with domain separation, the tree head
//! of any size, inclusion and consistency proofs, and their verification.
//! Pure functions over a hash function the caller gives ([`Digest`]:
//! SHA-256 in Shikko, from `shikko-pki`), so that this crate stays free of
//! cryptographic code and I/O.
//!
//! Proofs are computed from a [`Nodes`] source: the hash of any perfect
//! subtree (2^level leaves from an aligned index). A log that stores
//! those (one per level per completed subtree) answers any proof in
//! O(log n) reads whatever its size; [`LeafHashes`] is the in-memory source.

/// A hash of the tree.
pub type Hash = [u8; 32];

/// The tree's hash function: the digest of the concatenation of `parts`.
pub trait Digest {
    /// Hashes `parts`, concatenated.
    fn digest(parts: &[&[u8]]) -> Hash;
}

/// `HASH(0x00 || data)`: a leaf's hash.
pub fn leaf_hash<D: Digest>(data: &[u8]) -> Hash {
    D::digest(&[&[0x00], data])
}

/// `HASH(0x01 || left || right)`: an interior node's hash.
pub fn node_hash<D: Digest>(left: &Hash, right: &Hash) -> Hash {
    D::digest(&[&[0x01], left, right])
}

/// The head of the empty tree: `HASH()`.
pub fn empty_root<D: Digest>() -> Hash {
    D::digest(&[])
}

/// Where the hashes of perfect subtrees come from.
pub trait Nodes {
    /// The error of reading one.
    type Error;
    /// The hash of the perfect subtree of `2^level` leaves starting at
    /// leaf `index << level` (level 0: a leaf hash).
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The leaf hashes of a tree, in memory: a [`Nodes`] source for tests and
/// small trees (a perfect subtree is hashed from its leaves on each call).
#[derive(Debug, Clone, Default)]
pub struct LeafHashes<D> {
    /// The leaf hashes, in order.
    pub leaves: Vec<Hash>,
    digest: std::marker::PhantomData<D>,
}

impl<D: Digest> LeafHashes<D> {
    /// A tree of these leaf hashes.
    pub fn new(leaves: Vec<Hash>) -> Self {
        LeafHashes {
            leaves,
            digest: std::marker::PhantomData,
        }
    }
}

/// A request outside the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("leaves {start}..{end} are not in a tree of {size}")]
pub struct OutOfRange {
    /// First leaf asked.
    pub start: u64,
    /// Past the last leaf asked.
    pub end: u64,
    /// The tree's size.
    pub size: u64,
}

impl<D: Digest> Nodes for LeafHashes<D> {
    type Error = OutOfRange;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, OutOfRange> {
        let start = index << level;
        let end = start + (1u64 << level);
        let size = self.leaves.len() as u64;
        if end > size {
            return Err(OutOfRange { start, end, size });
        }
        let mut layer: Vec<Hash> = self.leaves[start as usize..end as usize].to_vec();
        while layer.len() > 1 {
            layer = layer
                .chunks(2)
                .map(|p| node_hash::<D>(&p[0], &p[1]))
                .collect();
        }
        Ok(layer[0])
    }
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` (end > start), from perfect subtrees: a range of the
/// RFC's recursion always starts on a boundary of its own split.
pub fn range_root<D: Digest, N: Nodes>(nodes: &N, start: u64, end: u64) -> Result<Hash, N::Error> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return nodes.perfect(n.trailing_zeros(), start >> n.trailing_zeros());
    }
    let k = split(n);
    let left = range_root::<D, N>(nodes, start, start + k)?;
    let right = range_root::<D, N>(nodes, start + k, end)?;
    Ok(node_hash::<D>(&left, &right))
}

/// The tree head of the first `size` leaves.
pub fn root<D: Digest, N: Nodes>(nodes: &N, size: u64) -> Result<Hash, N::Error> {
    if size == 0 {
        return Ok(empty_root::<D>());
    }
    range_root::<D, N>(nodes, 0, size)
}

/// The tree head of leaves given one at a time, in O(log n) memory (an
/// export read line by line): the right edge of the tree, the hash of the
/// last complete subtree of each level still waiting for its sibling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamingRoot {
    size: u64,
    waiting: Vec<Option<Hash>>,
}

impl StreamingRoot {
    /// Appends a leaf (its leaf hash).
    pub fn push<D: Digest>(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        while (self.size >> level) & 1 == 1 {
            let left = self.waiting[level].take().unwrap_or([0; 32]);
            hash = node_hash::<D>(&left, &hash);
            level += 1;
        }
        if self.waiting.len() <= level {
            self.waiting.resize(level + 1, None);
        }
        self.waiting[level] = Some(hash);
        self.size += 1;
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree head of the leaves so far: the waiting subtrees folded from
    /// the smallest (rightmost) up, as the RFC's recursion splits.
    pub fn root<D: Digest>(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for h in self.waiting.iter().flatten() {
            acc = Some(match acc {
                None => *h,
                Some(right) => node_hash::<D>(h, &right),
            });
        }
        acc.unwrap_or_else(empty_root::<D>)
    }
}

/// `PATH(index, D[0:size])`: the inclusion proof of leaf `index` in the
/// tree of `size` leaves, nearest sibling first. Empty when `index >=
/// size` (no leaf to prove; [`verify_inclusion`] refuses such an index).
pub fn inclusion_proof<D: Digest, N: Nodes>(
    nodes: &N,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    if index >= size {
        return Ok(proof);
    }
    path::<D, N>(nodes, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<D: Digest, N: Nodes>(
    nodes: &N,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), N::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path::<D, N>(nodes, m, start, start + k, out)?;
        out.push(range_root::<D, N>(nodes, start + k, end)?);
    } else {
        path::<D, N>(nodes, m - k, start + k, end, out)?;
        out.push(range_root::<D, N>(nodes, start, start + k)?);
    }
    Ok(())
}

/// `PROOF(old, D[0:size])`: the consistency proof of the tree of `old`
/// leaves with the tree of `size` leaves (empty when `old` is 0 or `size`).
pub fn consistency_proof<D: Digest, N: Nodes>(
    nodes: &N,
    old: u64,
    size: u64,
) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    if old == 0 || old >= size {
        return Ok(proof);
    }
    subproof::<D, N>(nodes, old, 0, size, true, &mut proof)?;
    Ok(proof)
}

fn subproof<D: Digest, N: Nodes>(
    nodes: &N,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), N::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_root::<D, N>(nodes, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof::<D, N>(nodes, m, start, start + k, whole, out)?;
        out.push(range_root::<D, N>(nodes, start + k, end)?);
    } else {
        subproof::<D, N>(nodes, m - k, start + k, end, false, out)?;
        out.push(range_root::<D, N>(nodes, start, start + k)?);
    }
    Ok(())
}

/// Why a proof does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size, or the old size is above the new one.
    #[error("the sizes or the index do not fit the tree")]
    Range,
    /// The proof has more or fewer hashes than the sizes call for.
    #[error("the proof has the wrong number of hashes")]
    Length,
    /// The hashes lead to another root.
    #[error("the proof leads to another root")]
    Mismatch,
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves whose head is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion<D: Digest>(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range);
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::Length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash::<D>(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash::<D>(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length);
    }
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// Checks that the tree of `new_size` leaves with head `new_root` extends
/// the tree of `old_size` leaves with head `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency<D: Digest>(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::Range);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::Length);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty one; nothing to prove.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::Length)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Length);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if s_n == 0 {
            return Err(ProofError::Length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash::<D>(c, &fr);
            sr = node_hash::<D>(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash::<D>(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length);
    }
    if &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}
