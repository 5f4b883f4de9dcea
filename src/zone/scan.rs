//! [`SignatureScan`]: the validity periods of every RRSIG of a zone, checked as the
//! records stream past, in memory that does not grow with the zone.
//!
//! The scan is fed one record at a time — from a zone file by `check-zone`, from a zone
//! transfer by the daemon — and keeps:
//!
//! * the number of RRsets (owner, type, class; RRSIG records excluded) and of signatures;
//! * the `keep` signatures that expire first, among those valid now;
//! * the `keep` signatures that expired first and the `keep` that become valid last, with
//!   the total number of each.
//!
//! Signature times are resolved relative to the scan's `now` with the serial-number
//! arithmetic of RFC 4034 §3.1.5 (see [`SignatureTime::at`]). A signature is *expired*
//! when its expiration is before `now` and *not yet valid* when its inception is after
//! `now` (RFC 4035 §5.3.1 accepts inception ≤ now ≤ expiration); one that is both counts
//! as expired.
//!
//! **Counting RRsets.** Zone files need not keep an RRset's records together nor sort by
//! type, and holding every (owner, type, class) seen would make memory grow with the
//! zone. The scan remembers the distinct (type, class) pairs of the current *run* of
//! records with the same owner (up to [`MAX_TYPES_PER_OWNER`]) and counts a pair once
//! per run. The count is exact when every owner's records are contiguous apart from
//! RRSIGs and the NSEC/NSEC3 chain, as in the output of `ldns-signzone`, Knot (which puts
//! the RRSIGs and the NSEC chain in sections of their own) and zone transfers from the
//! common servers. It over-counts an RRset whose records are split between two runs of
//! the same owner with another owner in between, and types beyond the cap that recur
//! within a run.
//!
//! **Not checked:** whether every RRset that must be signed has a signature. Delegation
//! NS records and glue are unsigned by design, Knot writes signatures apart from their
//! RRsets, and matching the two would need memory proportional to the zone; the
//! cryptographic validity of the signatures is not checked either.
//!
//! [`SignatureTime::at`]: super::rrsig::SignatureTime::at

use std::collections::BinaryHeap;
use std::time::Duration;

use super::name::Name;
use super::rrsig::Rrsig;
use super::types::{Class, Rtype};

/// How many distinct (type, class) pairs of one owner run the RRset count remembers.
pub const MAX_TYPES_PER_OWNER: usize = 256;

/// One signature as the scan reports it, with times resolved to seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedSignature {
    pub owner: Name,
    pub type_covered: Rtype,
    pub algorithm: u8,
    pub key_tag: u16,
    pub inception: i64,
    pub expiration: i64,
}

/// The outcome of a scan for a warning window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every signature is valid now and none expires within the window.
    Ok,
    /// Every signature is valid now, but at least one expires within the window.
    Expiring,
    /// At least one signature has expired or is not yet valid.
    Invalid,
    /// No signature was seen: nothing says the zone is fine.
    Unsigned,
}

/// See the module documentation.
#[derive(Debug)]
pub struct SignatureScan {
    now: i64,
    keep: usize,
    rrsets: u64,
    signatures: u64,
    run_owner: Option<Name>,
    run_types: Vec<(Rtype, Class)>,
    run_last: Option<(Rtype, Class)>,
    earliest_expiration: Option<i64>,
    earliest: Kept,
    expired: Kept,
    expired_total: u64,
    not_yet_valid: Kept,
    not_yet_valid_total: u64,
    seen: u64,
}

impl SignatureScan {
    /// A scan judging signatures at `now` (seconds since the epoch), keeping `keep`
    /// signatures of each list.
    pub fn new(now: i64, keep: usize) -> SignatureScan {
        SignatureScan {
            now,
            keep,
            rrsets: 0,
            signatures: 0,
            run_owner: None,
            run_types: Vec::new(),
            run_last: None,
            earliest_expiration: None,
            earliest: Kept::default(),
            expired: Kept::default(),
            expired_total: 0,
            not_yet_valid: Kept::default(),
            not_yet_valid_total: 0,
            seen: 0,
        }
    }

    /// A record other than an RRSIG (RRSIG records go to [`SignatureScan::add_signature`]
    /// and are ignored here).
    pub fn add_record(&mut self, owner: &Name, class: Class, rtype: Rtype) {
        if rtype == Rtype::RRSIG {
            return;
        }
        match &mut self.run_owner {
            Some(run) if run == owner => {}
            Some(run) => {
                run.set_from(owner);
                self.run_types.clear();
                self.run_last = None;
            }
            None => self.run_owner = Some(owner.clone()),
        }
        let key = (rtype, class);
        if self.run_last == Some(key) {
            return;
        }
        self.run_last = Some(key);
        if self.run_types.contains(&key) {
            return;
        }
        if self.run_types.len() < MAX_TYPES_PER_OWNER {
            self.run_types.push(key);
        }
        self.rrsets += 1;
    }

    /// An RRSIG record at `owner`.
    pub fn add_signature(&mut self, owner: &Name, rrsig: &Rrsig) {
        self.signatures += 1;
        self.seen += 1;
        let expiration = rrsig.expiration.at(self.now);
        let inception = rrsig.inception.at(self.now);
        let entry = || ScannedSignature {
            owner: owner.clone(),
            type_covered: rrsig.type_covered,
            algorithm: rrsig.algorithm,
            key_tag: rrsig.key_tag,
            inception,
            expiration,
        };
        let order = self.seen;
        if expiration < self.now {
            self.expired_total += 1;
            self.expired.offer((expiration, order), self.keep, entry);
        } else if inception > self.now {
            self.not_yet_valid_total += 1;
            // The latest inception first: the signature that stays invalid longest.
            self.not_yet_valid
                .offer((-inception, order), self.keep, entry);
        } else {
            if self.earliest_expiration.is_none_or(|e| expiration < e) {
                self.earliest_expiration = Some(expiration);
            }
            self.earliest.offer((expiration, order), self.keep, entry);
        }
    }

    /// The time the scan judges against.
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn rrsets(&self) -> u64 {
        self.rrsets
    }

    pub fn signatures(&self) -> u64 {
        self.signatures
    }

    /// The earliest expiration among the signatures valid now.
    pub fn earliest_expiration(&self) -> Option<i64> {
        self.earliest_expiration
    }

    /// The valid signatures that expire first, earliest first (ties in input order).
    pub fn earliest(&self) -> Vec<ScannedSignature> {
        self.earliest.sorted()
    }

    /// Expired signatures, the longest expired first.
    pub fn expired(&self) -> Vec<ScannedSignature> {
        self.expired.sorted()
    }

    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }

    /// Signatures not yet valid, the one becoming valid last first.
    pub fn not_yet_valid(&self) -> Vec<ScannedSignature> {
        self.not_yet_valid.sorted()
    }

    pub fn not_yet_valid_total(&self) -> u64 {
        self.not_yet_valid_total
    }

    /// Judges the scan for a warning window.
    pub fn verdict(&self, window: Duration) -> Verdict {
        if self.signatures == 0 {
            return Verdict::Unsigned;
        }
        if self.expired_total > 0 || self.not_yet_valid_total > 0 {
            return Verdict::Invalid;
        }
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        match self.earliest_expiration {
            Some(expiration) if expiration - self.now <= window => Verdict::Expiring,
            _ => Verdict::Ok,
        }
    }
}

/// The `keep` entries with the smallest keys: a max-heap that drops its largest.
#[derive(Debug, Default)]
struct Kept {
    heap: BinaryHeap<Ranked>,
}

#[derive(Debug)]
struct Ranked {
    key: (i64, u64),
    signature: ScannedSignature,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.key == other.key
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl Kept {
    /// Keeps the entry if it ranks among the `keep` smallest keys; builds it only then.
    fn offer(&mut self, key: (i64, u64), keep: usize, entry: impl FnOnce() -> ScannedSignature) {
        if self.heap.len() < keep {
            self.heap.push(Ranked {
                key,
                signature: entry(),
            });
        } else if self.heap.peek().is_some_and(|largest| key < largest.key) {
            self.heap.pop();
            self.heap.push(Ranked {
                key,
                signature: entry(),
            });
        }
    }

    fn sorted(&self) -> Vec<ScannedSignature> {
        let mut ranked: Vec<&Ranked> = self.heap.iter().collect();
        ranked.sort_by_key(|r| r.key);
        ranked.into_iter().map(|r| r.signature.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::rrsig::SignatureTime;

    const NOW: i64 = 1_795_993_200;
    const DAY: i64 = 86_400;

    fn name(text: &str) -> Name {
        Name::parse(text.as_bytes(), None).unwrap()
    }

    fn sig(covered: u16, inception: i64, expiration: i64) -> Rrsig {
        Rrsig {
            type_covered: Rtype(covered),
            algorithm: 13,
            labels: 2,
            original_ttl: 300,
            expiration: SignatureTime(expiration.rem_euclid(1 << 32) as u32),
            inception: SignatureTime(inception.rem_euclid(1 << 32) as u32),
            key_tag: 4242,
            signer: name("example.test."),
        }
    }

    fn record(scan: &mut SignatureScan, owner: &str, rtype: u16) {
        scan.add_record(&name(owner), Class::IN, Rtype(rtype));
    }

    #[test]
    fn counts_rrsets_per_owner_run() {
        let mut scan = SignatureScan::new(NOW, 3);
        // ldns style: RRSIGs after each RRset; an RRset split within one owner run.
        for (owner, rtype) in [
            ("a.test.", 6),
            ("a.test.", 2),
            ("a.test.", 2),
            ("a.test.", 46),
            ("A.TEST.", 1),
            ("a.test.", 2), // NS again in the same run: not a new RRset
            ("b.test.", 1),
            ("b.test.", 1),
            ("b.test.", 28),
            // Knot style: the NSEC chain in a section of its own.
            ("a.test.", 47),
            ("b.test.", 47),
        ] {
            record(&mut scan, owner, rtype);
        }
        assert_eq!(scan.rrsets(), 7);
        // Documented over-count: an owner's RRset split across runs.
        record(&mut scan, "b.test.", 1);
        assert_eq!(scan.rrsets(), 8);
        // Classes are apart.
        scan.add_record(&name("b.test."), Class(3), Rtype(1));
        assert_eq!(scan.rrsets(), 9);
    }

    #[test]
    fn rrset_count_memory_is_capped() {
        let mut scan = SignatureScan::new(NOW, 3);
        for rtype in 1000..1000 + MAX_TYPES_PER_OWNER as u16 + 10 {
            record(&mut scan, "a.test.", rtype);
        }
        assert_eq!(scan.rrsets(), MAX_TYPES_PER_OWNER as u64 + 10);
        assert_eq!(scan.run_types.len(), MAX_TYPES_PER_OWNER);
    }

    #[test]
    fn keeps_the_earliest_in_order_with_ties_in_input_order() {
        let mut scan = SignatureScan::new(NOW, 2);
        let owner = name("www.example.test.");
        scan.add_signature(&owner, &sig(1, NOW - DAY, NOW + 9 * DAY));
        scan.add_signature(&owner, &sig(28, NOW - DAY, NOW + 3 * DAY));
        scan.add_signature(&owner, &sig(16, NOW - DAY, NOW + 9 * DAY));
        scan.add_signature(&owner, &sig(15, NOW - DAY, NOW + 3 * DAY));
        let earliest = scan.earliest();
        assert_eq!(
            earliest
                .iter()
                .map(|s| s.type_covered.0)
                .collect::<Vec<_>>(),
            [28, 15]
        );
        assert_eq!(earliest[0].expiration, NOW + 3 * DAY);
        assert_eq!(scan.earliest_expiration(), Some(NOW + 3 * DAY));
        assert_eq!(scan.signatures(), 4);
        assert_eq!(
            scan.verdict(Duration::from_secs(2 * DAY as u64)),
            Verdict::Ok
        );
        assert_eq!(
            scan.verdict(Duration::from_secs(3 * DAY as u64)),
            Verdict::Expiring
        );
    }

    #[test]
    fn expired_and_not_yet_valid_are_invalid() {
        let mut scan = SignatureScan::new(NOW, 2);
        let owner = name("a.test.");
        scan.add_signature(&owner, &sig(1, NOW - 9 * DAY, NOW + 9 * DAY));
        assert_eq!(scan.verdict(Duration::ZERO), Verdict::Ok);
        scan.add_signature(&owner, &sig(2, NOW - 9 * DAY, NOW - DAY));
        scan.add_signature(&owner, &sig(6, NOW - 9 * DAY, NOW - 3 * DAY));
        scan.add_signature(&owner, &sig(15, NOW - 9 * DAY, NOW - 2 * DAY));
        scan.add_signature(&owner, &sig(16, NOW + DAY, NOW + 9 * DAY));
        scan.add_signature(&owner, &sig(28, NOW + 2 * DAY, NOW + 9 * DAY));
        scan.add_signature(&owner, &sig(99, NOW + 30, NOW + 9 * DAY));
        assert_eq!(scan.verdict(Duration::ZERO), Verdict::Invalid);
        assert_eq!(scan.expired_total(), 3);
        assert_eq!(
            scan.expired()
                .iter()
                .map(|s| s.type_covered.0)
                .collect::<Vec<_>>(),
            [6, 15]
        );
        assert_eq!(scan.not_yet_valid_total(), 3);
        assert_eq!(
            scan.not_yet_valid()
                .iter()
                .map(|s| s.type_covered.0)
                .collect::<Vec<_>>(),
            [28, 16]
        );
        // Valid at the boundaries: inception == now, expiration == now.
        let mut edge = SignatureScan::new(NOW, 2);
        edge.add_signature(&owner, &sig(1, NOW, NOW));
        assert_eq!(edge.verdict(Duration::ZERO), Verdict::Expiring);
    }

    #[test]
    fn no_signatures_is_not_ok() {
        let mut scan = SignatureScan::new(NOW, 2);
        record(&mut scan, "a.test.", 6);
        assert_eq!(scan.verdict(Duration::from_secs(1)), Verdict::Unsigned);
    }

    #[test]
    fn keep_zero_still_judges() {
        let mut scan = SignatureScan::new(NOW, 0);
        scan.add_signature(&name("a.test."), &sig(1, NOW - DAY, NOW + DAY));
        assert!(scan.earliest().is_empty());
        assert_eq!(
            scan.verdict(Duration::from_secs(2 * DAY as u64)),
            Verdict::Expiring
        );
    }

    #[test]
    fn times_wrap_with_serial_arithmetic() {
        // Scanning in 2106, just before the 32-bit wrap: a signature whose expiration
        // number is small expires after the wrap and is valid.
        let now = (1i64 << 32) - DAY;
        let mut scan = SignatureScan::new(now, 1);
        scan.add_signature(&name("a.test."), &sig(1, now - DAY, now + 2 * DAY));
        assert_eq!(scan.verdict(Duration::from_secs(DAY as u64)), Verdict::Ok);
        assert_eq!(scan.earliest()[0].expiration, now + 2 * DAY);
    }
}
