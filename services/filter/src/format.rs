//! The signed filter file (docs/FILTER.md): a header, one or two clubcards,
//! and the issuer's signature over everything before it. Big-endian
//! throughout; every length is checked against what is left, so a short,
//! long or corrupted file is an error, never a panic.

use clubcard::{Clubcard, ClubcardIndex, ClubcardIndexEntry};

use crate::FilterError;

/// The first four octets of a filter file.
pub const MAGIC: &[u8; 4] = b"SHKF";
/// The format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// Columns of the ribbon equations (64 * W bits), as in CRLite.
pub const W: usize = 4;

/// A clubcard as this format holds it: no universe or partition metadata
/// (the header's coverage says what the filter is exact for).
pub type Card = Clubcard<W, (), ()>;

/// A full filter, or a delta against one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every unexpired certificate of the issuer at `covered_until`.
    Full,
    /// The changes since a full filter (`base`).
    Delta,
}

/// The signature algorithm of a filter (the issuing CA's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// ecdsa-with-SHA256, a DER `Ecdsa-Sig-Value`.
    EcdsaSha256,
    /// sha256WithRSAEncryption (PKCS#1 v1.5).
    RsaSha256,
}

impl SignatureAlgorithm {
    fn code(self) -> u8 {
        match self {
            SignatureAlgorithm::EcdsaSha256 => 1,
            SignatureAlgorithm::RsaSha256 => 2,
        }
    }

    fn from_code(c: u8) -> Result<Self, FilterError> {
        match c {
            1 => Ok(SignatureAlgorithm::EcdsaSha256),
            2 => Ok(SignatureAlgorithm::RsaSha256),
            other => Err(FilterError::Malformed(format!(
                "unknown signature algorithm {other}"
            ))),
        }
    }

    /// Its object identifier.
    pub fn oid(self) -> const_oid::ObjectIdentifier {
        match self {
            SignatureAlgorithm::EcdsaSha256 => const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
            SignatureAlgorithm::RsaSha256 => const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        }
    }
}

/// What a filter says about itself (the signed header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Full or delta.
    pub kind: Kind,
    /// SHA-256 of the issuer's subjectPublicKey (as OCSP's issuerKeyHash
    /// with SHA-256): which CA, by key.
    pub issuer_key_hash: [u8; 32],
    /// This filter's number: increasing per issuer, fulls and deltas alike.
    pub number: u64,
    /// The full filter a delta applies to (a full filter: its own number).
    pub base: u64,
    /// The CRL number of the CRL built from the same snapshot (big-endian,
    /// at most 20 octets).
    pub crl_number: Vec<u8>,
    /// When it was made (Unix seconds).
    pub this_update: i64,
    /// When the next one is due; past it the filter is stale and refused.
    pub next_update: i64,
    /// Certificates with notBefore at or before this are covered (a delta:
    /// up to its own snapshot).
    pub covered_until: i64,
    /// Certificates with notAfter at or before this are not covered (they
    /// had expired when the full filter was made).
    pub expired_before: i64,
}

/// A filter file, decoded (its signature not yet checked: [`crate::verify`]).
pub struct FilterFile {
    /// The header.
    pub header: Header,
    /// A full filter: the listed (revoked or held) certificates among the
    /// covered ones. A delta: certificates good in the full filter (or
    /// issued since) that are listed now.
    pub listed: Card,
    /// A delta only: certificates listed in the full filter that are not
    /// listed now (holds released).
    pub released: Option<Card>,
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The octets the signature covers.
    pub signed: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
}

/// The body of a filter file (everything the signature covers).
pub fn encode_body(
    header: &Header,
    listed: &Card,
    released: Option<&Card>,
    algorithm: SignatureAlgorithm,
) -> Result<Vec<u8>, FilterError> {
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    b.push(VERSION);
    b.push(match header.kind {
        Kind::Full => 1,
        Kind::Delta => 2,
    });
    b.extend_from_slice(&header.issuer_key_hash);
    b.extend_from_slice(&header.number.to_be_bytes());
    b.extend_from_slice(&header.base.to_be_bytes());
    if header.crl_number.len() > 20 {
        return Err(FilterError::Malformed(
            "a CRL number has at most 20 octets".into(),
        ));
    }
    b.push(header.crl_number.len() as u8);
    b.extend_from_slice(&header.crl_number);
    for t in [
        header.this_update,
        header.next_update,
        header.covered_until,
        header.expired_before,
    ] {
        b.extend_from_slice(&t.to_be_bytes());
    }
    let cards: Vec<&Card> = std::iter::once(listed).chain(released).collect();
    b.push(cards.len() as u8);
    for c in cards {
        let mut body = Vec::new();
        encode_card(c, &mut body)?;
        put_len(&mut b, body.len())?;
        b.extend_from_slice(&body);
    }
    b.push(algorithm.code());
    Ok(b)
}

/// A whole file: the body, the signature, the signature's length (two
/// octets) last.
pub fn assemble(body: Vec<u8>, signature: &[u8]) -> Result<Vec<u8>, FilterError> {
    let n = u16::try_from(signature.len())
        .map_err(|_| FilterError::Malformed("a signature longer than 65,535 octets".into()))?;
    let mut out = body;
    out.extend_from_slice(signature);
    out.extend_from_slice(&n.to_be_bytes());
    Ok(out)
}

fn put_len(b: &mut Vec<u8>, n: usize) -> Result<(), FilterError> {
    let n = u32::try_from(n).map_err(|_| FilterError::Malformed("a section over 4 GiB".into()))?;
    b.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn encode_card(c: &Card, b: &mut Vec<u8>) -> Result<(), FilterError> {
    put_len(b, c.index.len())?;
    for (block, e) in &c.index {
        if block.len() != 32 {
            return Err(FilterError::Malformed("a block id is not 32 octets".into()));
        }
        b.extend_from_slice(block);
        for v in [
            e.approx_filter_m,
            e.exact_filter_m,
            e.approx_filter_offset,
            e.exact_filter_offset,
        ] {
            put_len(b, v)?;
        }
        b.push(
            u8::try_from(e.approx_filter_rank)
                .map_err(|_| FilterError::Malformed("a rank over 255".into()))?,
        );
        b.push(u8::from(e.inverted));
        put_len(b, e.exceptions.len())?;
        for x in &e.exceptions {
            b.push(
                u8::try_from(x.len())
                    .map_err(|_| FilterError::Malformed("an exception over 255 octets".into()))?,
            );
            b.extend_from_slice(x);
        }
    }
    b.push(
        u8::try_from(c.approx_filter.len())
            .map_err(|_| FilterError::Malformed("more than 255 approximate columns".into()))?,
    );
    for col in &c.approx_filter {
        put_words(b, col)?;
    }
    put_words(b, &c.exact_filter)
}

fn put_words(b: &mut Vec<u8>, w: &[u64]) -> Result<(), FilterError> {
    put_len(b, w.len())?;
    for x in w {
        b.extend_from_slice(&x.to_be_bytes());
    }
    Ok(())
}

/// A cursor over the file's octets.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FilterError> {
        if self.b.len() < n {
            return Err(FilterError::Malformed(format!(
                "the file ends inside {what}"
            )));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn u8(&mut self, what: &str) -> Result<u8, FilterError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<usize, FilterError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_be_bytes(a) as usize)
    }

    fn u64(&mut self, what: &str) -> Result<u64, FilterError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }

    fn i64(&mut self, what: &str) -> Result<i64, FilterError> {
        Ok(self.u64(what)? as i64)
    }

    fn words(&mut self, what: &str) -> Result<Vec<u64>, FilterError> {
        let n = self.u32(what)?;
        let raw = self.take(
            n.checked_mul(8)
                .ok_or_else(|| FilterError::Malformed(format!("{what} too long")))?,
            what,
        )?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_be_bytes(a)
            })
            .collect())
    }
}

fn decode_card(b: &[u8]) -> Result<Card, FilterError> {
    let mut r = Reader { b };
    let blocks = r.u32("the block count")?;
    if blocks > 1 {
        return Err(FilterError::Malformed(
            "a filter is of one issuer (one block)".into(),
        ));
    }
    let mut index = ClubcardIndex::new();
    for _ in 0..blocks {
        let block = r.take(32, "a block id")?.to_vec();
        let approx_filter_m = r.u32("a block entry")?;
        let exact_filter_m = r.u32("a block entry")?;
        let approx_filter_offset = r.u32("a block entry")?;
        let exact_filter_offset = r.u32("a block entry")?;
        let approx_filter_rank = usize::from(r.u8("a block entry")?);
        let inverted = match r.u8("a block entry")? {
            0 => false,
            1 => true,
            _ => return Err(FilterError::Malformed("inverted is 0 or 1".into())),
        };
        let n = r.u32("the exception count")?;
        let mut exceptions = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let len = usize::from(r.u8("an exception")?);
            exceptions.push(r.take(len, "an exception")?.to_vec());
        }
        index.insert(
            block,
            ClubcardIndexEntry {
                approx_filter_m,
                exact_filter_m,
                approx_filter_rank,
                approx_filter_offset,
                exact_filter_offset,
                inverted,
                exceptions,
            },
        );
    }
    let columns = usize::from(r.u8("the column count")?);
    let mut approx_filter = Vec::with_capacity(columns);
    for _ in 0..columns {
        approx_filter.push(r.words("an approximate column")?);
    }
    let exact_filter = r.words("the exact column")?;
    if !r.b.is_empty() {
        return Err(FilterError::Malformed("octets after a clubcard".into()));
    }
    // A query reads the first `rank` columns by index (and stops at a
    // column's end otherwise): the rank must be within the columns.
    if index
        .values()
        .any(|e| e.approx_filter_rank > approx_filter.len())
    {
        return Err(FilterError::Malformed(
            "a block's rank exceeds the columns".into(),
        ));
    }
    Ok(Clubcard {
        universe: (),
        partition: (),
        index,
        approx_filter,
        exact_filter,
    })
}

/// Decodes a filter file (its signature is checked by [`crate::verify`]).
pub fn decode(file: &[u8]) -> Result<FilterFile, FilterError> {
    if file.len() < 2 {
        return Err(FilterError::Malformed("too short for a filter".into()));
    }
    let (rest, n) = file.split_at(file.len() - 2);
    let sig_len = usize::from(u16::from_be_bytes([n[0], n[1]]));
    if rest.len() < sig_len {
        return Err(FilterError::Malformed(
            "the signature's length is wrong".into(),
        ));
    }
    let (signed, signature) = rest.split_at(rest.len() - sig_len);
    let mut r = Reader { b: signed };
    if r.take(4, "the magic")? != MAGIC {
        return Err(FilterError::Malformed("not a Shikko filter (magic)".into()));
    }
    let version = r.u8("the version")?;
    if version != VERSION {
        return Err(FilterError::Malformed(format!(
            "format version {version}; this client reads {VERSION}"
        )));
    }
    let kind = match r.u8("the kind")? {
        1 => Kind::Full,
        2 => Kind::Delta,
        k => return Err(FilterError::Malformed(format!("unknown kind {k}"))),
    };
    let mut issuer_key_hash = [0u8; 32];
    issuer_key_hash.copy_from_slice(r.take(32, "the issuer key hash")?);
    let number = r.u64("the number")?;
    let base = r.u64("the base")?;
    let crl_len = usize::from(r.u8("the CRL number")?);
    if crl_len > 20 {
        return Err(FilterError::Malformed(
            "a CRL number has at most 20 octets".into(),
        ));
    }
    let crl_number = r.take(crl_len, "the CRL number")?.to_vec();
    let this_update = r.i64("thisUpdate")?;
    let next_update = r.i64("nextUpdate")?;
    let covered_until = r.i64("the coverage")?;
    let expired_before = r.i64("the coverage")?;
    let cards = r.u8("the section count")?;
    let expected = match kind {
        Kind::Full => 1,
        Kind::Delta => 2,
    };
    if cards != expected {
        return Err(FilterError::Malformed(format!(
            "a {kind:?} filter has {expected} sections, this one {cards}"
        )));
    }
    let mut decoded = Vec::with_capacity(2);
    for _ in 0..cards {
        let len = r.u32("a section length")?;
        let card = decode_card(r.take(len, "a section")?)?;
        if let Some(block) = card.index.keys().next()
            && block.as_slice() != issuer_key_hash
        {
            return Err(FilterError::Malformed(
                "a section names another issuer".into(),
            ));
        }
        decoded.push(card);
    }
    let algorithm = SignatureAlgorithm::from_code(r.u8("the signature algorithm")?)?;
    if !r.b.is_empty() {
        return Err(FilterError::Malformed("octets after the header".into()));
    }
    let mut decoded = decoded.into_iter();
    let listed = decoded
        .next()
        .ok_or_else(|| FilterError::Malformed("no section".into()))?;
    let released = decoded.next();
    Ok(FilterFile {
        header: Header {
            kind,
            issuer_key_hash,
            number,
            base,
            crl_number,
            this_update,
            next_update,
            covered_until,
            expired_before,
        },
        listed,
        released,
        algorithm,
        signed: signed.to_vec(),
        signature: signature.to_vec(),
    })
}

impl std::fmt::Debug for FilterFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterFile")
            .field("header", &self.header)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl FilterFile {
    /// The filter's clubcards' sizes in octets (approximate and exact
    /// columns, as encoded), for reports.
    pub fn filter_octets(&self) -> usize {
        let size = |c: &Card| {
            8 * (c.approx_filter.iter().map(Vec::len).sum::<usize>() + c.exact_filter.len())
        };
        size(&self.listed) + self.released.as_ref().map_or(0, size)
    }

    /// A one-line description of its clubcards, for logs.
    pub fn describe(&self) -> String {
        let mut s = self.listed.to_string();
        if let Some(r) = &self.released {
            s.push_str(&format!("; released: {r}"));
        }
        s.replace('\n', "")
    }
}
