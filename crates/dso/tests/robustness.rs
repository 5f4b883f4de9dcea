//! `decode()` never panics, and decode → encode → decode is stable for everything that
//! decodes: every prefix of every test vector, and pseudo-random mutations of them.

mod common;

use common::{hex, reference, unframe};
use dso::{NameCompression, decode};

/// Extra seeds beyond the reference vectors: compression pointers, collective removes,
/// ignored TTLs, unknown TLVs, padding, empty RDATA.
const EXTRA_SEEDS: [&str; 5] = [
    "00 00 30 00 00 00 00 00 00 00 00 00 00 41 00 37
     04 5f 69 70 70 04 5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00
     00 0c 00 01 ff ff ff ff 00 0a 07 70 72 69 6e 74 65 72 c0 10
     c0 10 00 0c 00 01 ff ff ff fe 00 00",
    "00 00 30 00 00 00 00 00 00 00 00 00 00 41 00 43
     01 68 07 65 78 61 6d 70 6c 65 00 00 ff 00 01 ff ff ff fe 00 00
     01 68 07 65 78 61 6d 70 6c 65 00 00 00 00 ff ff ff ff fe 00 00
     01 68 07 65 78 61 6d 70 6c 65 00 00 01 00 01 80 00 00 00 00 04 c0 00 02 01",
    "01 01 30 00 00 00 00 00 00 00 00 00 f8 00 00 02 ab cd 00 03 00 03 00 00 00 00 44 00 00",
    "00 00 30 00 00 00 00 00 00 00 00 00 00 41 00 26
     01 68 07 65 78 61 6d 70 6c 65 00 00 2a 00 01 00 00 00 00 00 00
     c0 10 00 10 00 01 00 00 00 3c 00 05 04 74 65 78 74",
    "00 00 30 00 00 00 00 00 00 00 00 00 00 43 00 25
     04 5f 69 70 70 04 5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00
     00 0c 00 01 07 70 72 69 6e 74 65 72 c0 10",
];

fn seeds() -> Vec<Vec<u8>> {
    reference::ALL
        .iter()
        .map(|v| unframe(&hex(v)))
        .chain(EXTRA_SEEDS.iter().map(|v| hex(v)))
        .collect()
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len().max(1);
        match rng.below(7) {
            0 => {
                let at = rng.below(len);
                if let Some(b) = out.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let at = rng.below(len);
                if let Some(b) = out.get_mut(at) {
                    *b = rng.byte();
                }
            }
            2 => {
                let at = rng.below(len + 1).min(out.len());
                out.insert(at, rng.byte());
            }
            3 if !out.is_empty() => {
                let at = rng.below(out.len());
                out.remove(at);
            }
            4 => out.truncate(rng.below(len + 1)),
            5 if out.len() > 12 => {
                // Duplicate a tail slice (often a whole TLV or record).
                let from = 12 + rng.below(out.len() - 12);
                let tail = out[from..].to_vec();
                out.extend(tail);
            }
            _ => {
                // Interesting values at interesting places: lengths, TTLs, types, pointers.
                let at = rng.below(len);
                let value = [
                    0x00, 0xff, 0xc0, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x7f, 0x80, 0xfe,
                ][rng.below(11)];
                if let Some(b) = out.get_mut(at) {
                    *b = value;
                }
            }
        }
    }
    out
}

/// Decodes; if that works, both encodings must decode back to the same value.
fn check(bytes: &[u8]) -> bool {
    let Ok(first) = decode(bytes) else {
        return false;
    };
    for compression in [NameCompression::Compressed, NameCompression::Uncompressed] {
        let encoded = first.encode_with(compression).unwrap_or_else(|e| {
            panic!("decoded {first:?} from {bytes:02x?} but cannot encode it: {e}")
        });
        let second = decode(&encoded)
            .unwrap_or_else(|e| panic!("re-encoded {first:?} as {encoded:02x?}, which fails: {e}"));
        assert_eq!(first, second, "unstable round trip of {bytes:02x?}");
    }
    true
}

#[test]
fn every_prefix_of_every_vector() {
    for seed in seeds() {
        assert!(check(&seed), "seed must decode: {seed:02x?}");
        for end in 0..seed.len() {
            check(&seed[..end]);
        }
    }
}

#[test]
fn pseudo_random_mutations() {
    let seed = std::env::var("DSO_FUZZ_SEED")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed);
    let seeds = seeds();
    let mut decoded = 0;
    // DSO_FUZZ_ROUNDS raises the count for a longer run, e.g. in release mode.
    let rounds = std::env::var("DSO_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4000);
    for _ in 0..rounds {
        for seed in &seeds {
            let input = mutate(&mut rng, seed);
            if check(&input) {
                decoded += 1;
            }
        }
    }
    // The mutations must exercise the success path too, not only the error paths.
    assert!(decoded > rounds, "only {decoded} mutated inputs decoded");
}

#[test]
fn random_bytes_after_a_dso_header() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut input = vec![
            rng.byte(),
            rng.byte(),
            0x30 | (rng.byte() & 0x80),
            rng.byte() & 0x0f,
        ];
        input.extend([0; 8]);
        let len = rng.below(64);
        input.extend((0..len).map(|_| rng.byte()));
        check(&input);
    }
}
