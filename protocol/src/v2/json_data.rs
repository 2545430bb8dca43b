//! The elements of a JSON tensor's `data`, read two ways that must agree:
//!
//! - `scan`, the fast path: a byte loop over the text for what tensor data almost always is
//!   (arrays, nested or flat, of numbers and booleans);
//! - `walk`, the reference: serde_json's deserializer, for everything else.
//!
//! `scan` hands over exactly the leaves `walk` would, bit for bit, or says it cannot
//! (`Scan::Unsupported`) and leaves the text to `walk`. It reproduces serde_json's own number
//! semantics rather than a different rounding: integers that fit `u64` / `i64` stay integers, and
//! a decimal is `significand as f64` times or divided by a power of ten, which is what
//! serde_json computes (without its `float_roundtrip` feature). It only takes the numbers where
//! that is exact arithmetic on exact operands: a significand below 2^64 and a decimal exponent
//! within ±22, whose power of ten an `f64` holds exactly. Longer or more extreme numbers are rare
//! in tensor data and go to `walk`. The `json_data` fuzz target checks the agreement on arbitrary
//! text; the unit tests below on the cases that matter.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

/// A scalar element of JSON data, in row-major order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leaf {
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

/// How `scan` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Every leaf was handed over and taken.
    Done,
    /// The sink refused a leaf; `walk` would refuse it too.
    Refused,
    /// The text holds something `scan` leaves to `walk` (a string, `null`, an object, a number
    /// outside its exact range) or is not JSON; leaves handed over before are to be discarded.
    Unsupported,
}

/// Powers of ten an `f64` holds exactly (10^22 < 2^53 · 2^22): products of exact values, so
/// each is the correctly rounded literal serde_json's table holds.
const EXACT_POW10: [f64; 23] = {
    let mut table = [1.0; 23];
    let mut i = 1;
    while i < table.len() {
        table[i] = table[i - 1] * 10.0;
        i += 1;
    }
    table
};

/// Deeper nesting is left to `walk`, which refuses what passes serde_json's recursion limit
/// (128): no tensor has a rank near either.
const MAX_DEPTH: usize = 64;

/// The fast path: hands each leaf of `raw` (a JSON value: an array nested to any depth, or a
/// scalar) to `take` in row-major order; stops at the first leaf `take` refuses.
pub fn scan(raw: &str, take: &mut impl FnMut(Leaf) -> bool) -> Scan {
    let bytes = raw.as_bytes();
    match scan_value(bytes, 0, take) {
        (Scan::Done, end) if end == bytes.len() => Scan::Done,
        (Scan::Done, _) => Scan::Unsupported,
        (outcome, _) => outcome,
    }
}

/// As [`scan`], for the JSON value that starts at `start` (after optional whitespace) and is
/// followed by more text: how it ended and, when `Done`, the index past the value and any
/// whitespace after it.
pub fn scan_value(bytes: &[u8], start: usize, take: &mut impl FnMut(Leaf) -> bool) -> (Scan, usize) {
    let mut at = skip_space(bytes, start);
    let mut depth = 0usize;
    loop {
        // A value is expected at `at`; each arm leaves `at` just past it.
        let leaf = match bytes.get(at) {
            Some(b'[') => {
                at = skip_space(bytes, at + 1);
                if bytes.get(at) != Some(&b']') {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return (Scan::Unsupported, at);
                    }
                    continue;
                }
                at += 1;
                None // `[]`: a value with no leaves
            }
            Some(b'-' | b'0'..=b'9') => match number(bytes, at) {
                Some((leaf, end)) => {
                    at = end;
                    Some(leaf)
                }
                None => return (Scan::Unsupported, at),
            },
            Some(b't') if bytes[at..].starts_with(b"true") => {
                at += 4;
                Some(Leaf::Bool(true))
            }
            Some(b'f') if bytes[at..].starts_with(b"false") => {
                at += 5;
                Some(Leaf::Bool(false))
            }
            _ => return (Scan::Unsupported, at),
        };
        if let Some(leaf) = leaf
            && !take(leaf)
        {
            return (Scan::Refused, at);
        }
        // After a value: commas and closing brackets.
        at = skip_space(bytes, at);
        loop {
            if depth == 0 {
                return (Scan::Done, at);
            }
            match bytes.get(at) {
                Some(b',') => {
                    at = skip_space(bytes, at + 1);
                    break;
                }
                Some(b']') => {
                    depth -= 1;
                    at = skip_space(bytes, at + 1);
                }
                _ => return (Scan::Unsupported, at),
            }
        }
    }
}

pub(super) fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// One JSON number starting at `start`: the leaf serde_json makes of it and the index past it,
/// or `None` when it is not a JSON number or is outside what `scan` takes (see the module).
pub(super) fn number(bytes: &[u8], start: usize) -> Option<(Leaf, usize)> {
    let mut at = start;
    let positive = bytes[at] != b'-';
    if !positive {
        at += 1;
    }
    let mut significand: u64 = match bytes.get(at) {
        Some(b'0') => {
            at += 1;
            if bytes.get(at).is_some_and(u8::is_ascii_digit) {
                return None; // a leading zero: not JSON
            }
            0
        }
        Some(&d @ b'1'..=b'9') => {
            let (s, end) = digits(bytes, at + 1, u64::from(d - b'0'))?;
            at = end;
            s
        }
        _ => return None,
    };
    let mut exponent: i32 = 0;
    let mut is_float = false;
    if bytes.get(at) == Some(&b'.') {
        let from = at + 1;
        (significand, at) = fraction_digits(bytes, from, significand)?;
        if at == from {
            return None; // `1.`: not JSON
        }
        exponent = -i32::try_from(at - from).ok()?;
        is_float = true;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        let negative_exponent = match bytes.get(at) {
            Some(b'-') => {
                at += 1;
                true
            }
            Some(b'+') => {
                at += 1;
                false
            }
            _ => false,
        };
        let digits_from = at;
        let mut e: i32 = 0;
        while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
            // Past 10^22 either way `scan` declines, so saturating here loses nothing.
            e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
            at += 1;
        }
        if at == digits_from {
            return None; // `1e`: not JSON
        }
        exponent = if negative_exponent { exponent.saturating_sub(e) } else { exponent.saturating_add(e) };
        is_float = true;
    }
    if !is_float {
        let leaf = if positive {
            Leaf::Uint(significand)
        } else {
            // As serde_json: `-0` and magnitudes past i64::MIN become floats.
            match (significand as i64).wrapping_neg() {
                n if n >= 0 => Leaf::Float(-(significand as f64)),
                n => Leaf::Int(n),
            }
        };
        return Some((leaf, at));
    }
    let pow = *EXACT_POW10.get(exponent.unsigned_abs() as usize)?;
    let mut x = significand as f64;
    if exponent >= 0 {
        x *= pow;
    } else {
        x /= pow;
    }
    Some((Leaf::Float(if positive { x } else { -x }), at))
}

/// Appends the decimal digits from `at` on to `significand`: the result and the index past the
/// last digit, or `None` when it would pass `u64::MAX` (`scan` leaves such numbers to `walk`).
/// One digit at a time: what an integer part is (one or two digits, mostly).
fn digits(bytes: &[u8], mut at: usize, mut significand: u64) -> Option<(u64, usize)> {
    while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
        significand = significand.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        at += 1;
    }
    Some((significand, at))
}

/// As [`digits`], for a fraction: its digits are where the long runs are (a client printing an
/// `f32` through an `f64` sends 16 or 17), so it reads a word of eight bytes at a time while
/// eight remain (in a request body the data array is followed by more text, so only the last
/// number of a body ends short): `digit_run` finds how many lead with digits and their value
/// without a branch per byte. Adding a run of digits at once overflows exactly when adding them
/// one by one would: each prefix of a number's digits is at most the whole.
fn fraction_digits(bytes: &[u8], mut at: usize, mut significand: u64) -> Option<(u64, usize)> {
    while let Some(&word) = bytes.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        let (count, value) = digit_run(u64::from_le_bytes(word));
        significand = significand.checked_mul(POW10_U64[count])?.checked_add(value)?;
        at += count;
        if count < 8 {
            return Some((significand, at));
        }
    }
    digits(bytes, at, significand)
}

/// 10^n for n in 0..=8.
const POW10_U64: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// Of eight bytes read as a little-endian `u64` (the first byte lowest): how many lead with
/// ASCII digits (0 to 8), and the value of those digits.
fn digit_run(word: u64) -> (usize, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Digits become 0..=9 and every other byte something else.
    let x = word ^ (0x30 * ONES);
    // A byte's high bit ends up set unless it is at most 9: adding 0x76 sets it for 10 and above,
    // `| x` for 0x80 and above. A byte of 0x8A or more carries into the next, but only into
    // bytes after the first non-digit, which are not read.
    let non_digits = (x.wrapping_add(0x76 * ONES) | x) & (0x80 * ONES);
    let count = (non_digits.trailing_zeros() / 8) as usize;
    if count == 0 {
        return (0, 0);
    }
    // The run's digits moved to the top bytes, zeros below them: as eight digits, the same number.
    let v = x << (8 * (8 - count));
    // Byte i becomes 10 * digit i + digit i + 1 (at most 99, no carry), so bytes 0, 2, 4 and 6
    // hold the four two-digit pairs p0..p3, most significant first.
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    // Two multiplications put p0·10^6 + p2·10^2 and p1·10^4 + p3 in the high halves (the low
    // halves, p0·100 + p1 at most 9999, carry nothing into them); their sum is the value.
    const PAIRS_0_2: u64 = 0x0000_00FF_0000_00FF;
    let high = (v & PAIRS_0_2).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((v >> 16) & PAIRS_0_2).wrapping_mul(1 + (10_000 << 32));
    (count, high.wrapping_add(low) >> 32)
}

/// The reference: serde_json's deserializer walks `raw` and hands each leaf to `take`. False
/// when `raw` is not JSON data (strings, `null`, objects, malformed text) or `take` refused a
/// leaf; what was handed over before is then to be discarded.
pub fn walk(raw: &str, take: &mut impl FnMut(Leaf) -> bool) -> bool {
    let mut de = serde_json::Deserializer::from_str(raw);
    Leaves(take).deserialize(&mut de).and_then(|()| de.end()).is_ok()
}

/// Walks JSON data (arrays nested to any depth serde_json allows) and hands each scalar to the
/// sink in row-major order; stops with an error at the first element the sink refuses, or at
/// anything that is not a number, a boolean or an array.
struct Leaves<'s, F>(&'s mut F);

impl<'de, F: FnMut(Leaf) -> bool> DeserializeSeed<'de> for Leaves<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, F: FnMut(Leaf) -> bool> Visitor<'de> for Leaves<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor data: numbers, booleans or arrays of them")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Leaves(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.take(Leaf::Int(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.take(Leaf::Uint(n))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<(), E> {
        self.take(Leaf::Float(x))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        self.take(Leaf::Bool(b))
    }
}

impl<F: FnMut(Leaf) -> bool> Leaves<'_, F> {
    fn take<E: de::Error>(self, leaf: Leaf) -> Result<(), E> {
        if (self.0)(leaf) { Ok(()) } else { Err(E::custom("element refused")) }
    }
}

/// Whether two leaves are the same value bit for bit (`-0.0` is not `0.0` here).
pub fn same(a: &Leaf, b: &Leaf) -> bool {
    match (a, b) {
        (Leaf::Float(x), Leaf::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Checks the promise of this module on one text: when `scan` takes `raw` whole, `walk` takes
/// it too and hands over the same leaves, bit for bit. Panics naming the first difference. For
/// the fuzz target and the tests.
pub fn check_agreement(raw: &str) {
    let mut fast = Vec::new();
    if scan(raw, &mut |leaf| {
        fast.push(leaf);
        true
    }) != Scan::Done
    {
        return;
    }
    let mut reference = Vec::new();
    let walked = walk(raw, &mut |leaf| {
        reference.push(leaf);
        true
    });
    assert!(walked, "scan took {raw:?} but serde_json refuses it");
    assert_eq!(fast.len(), reference.len(), "leaf counts differ for {raw:?}");
    for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
        assert!(same(a, b), "leaf {i} of {raw:?}: scan {a:?}, serde_json {b:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(raw: &str) -> (Scan, Vec<Leaf>) {
        let mut leaves = Vec::new();
        let outcome = scan(raw, &mut |leaf| {
            leaves.push(leaf);
            true
        });
        (outcome, leaves)
    }

    #[test]
    fn arrays_of_numbers_and_booleans_are_scanned() {
        let (outcome, leaves) = scanned(" [ [1, -2, 3.5] ,[0.25e1, true,false], [] , [[ -0 ]] ] ");
        assert_eq!(outcome, Scan::Done);
        let want = [
            Leaf::Uint(1),
            Leaf::Int(-2),
            Leaf::Float(3.5),
            Leaf::Float(2.5),
            Leaf::Bool(true),
            Leaf::Bool(false),
            Leaf::Float(-0.0),
        ];
        assert_eq!(leaves.len(), want.len());
        assert!(leaves.iter().zip(&want).all(|(a, b)| same(a, b)), "{leaves:?}");
        assert_eq!(scanned("7").1, [Leaf::Uint(7)]);
        assert_eq!(scanned("[]"), (Scan::Done, vec![]));
    }

    #[test]
    fn what_scan_leaves_to_serde_json() {
        for raw in [
            "[1, null]",
            "[\"1\"]",
            "{\"a\": 1}",
            "[1e23]",                     // 10^23 is not exact in an f64
            "[1.5e-23]",                  // nor is 10^-23
            "[18446744073709551616]",     // past u64
            "[0.1234567890123456789012]", // significand past u64
            "[tru]",
        ] {
            assert_eq!(scanned(raw).0, Scan::Unsupported, "{raw}");
        }
        let deep = format!("{}1{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(scanned(&deep).0, Scan::Unsupported);
        let deep_enough = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(scanned(&deep_enough), (Scan::Done, vec![Leaf::Uint(1)]));
        check_agreement(&deep_enough);
    }

    #[test]
    fn malformed_text_is_never_taken() {
        for raw in [
            "[1,]",
            "[,1]",
            "[1 2]",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[1e+]",
            "[-]",
            "[+1]",
            "[1]]",
            "[[1]",
            "[1] x",
            "",
            "[",
            "]",
            "[1,,2]",
            "[truex]",
            "[NaN]",
            "[Infinity]",
            "[0x10]",
        ] {
            assert_ne!(scanned(raw).0, Scan::Done, "{raw:?}");
            let mut sink = |_| true;
            assert!(!walk(raw, &mut sink), "serde_json takes {raw:?}, so the test is wrong");
        }
    }

    #[test]
    fn digit_run_counts_and_reads_the_leading_digits() {
        let naive = |bytes: [u8; 8]| {
            let count = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            (count, bytes[..count].iter().fold(0u64, |n, b| n * 10 + u64::from(b - b'0')))
        };
        let run = |bytes: [u8; 8]| digit_run(u64::from_le_bytes(bytes));
        assert_eq!(run(*b"01234567"), (8, 1_234_567));
        assert_eq!(run(*b"99999999"), (8, 99_999_999));
        assert_eq!(run(*b"015625,0"), (6, 15_625));
        assert_eq!(run(*b"5]}]}   "), (1, 5));
        assert_eq!(run(*b",0.03125"), (0, 0));
        // Every byte value in every position, the others digits.
        for at in 0..8 {
            for b in 0..=u8::MAX {
                let mut bytes = *b"31415926";
                bytes[at] = b;
                assert_eq!(run(bytes), naive(bytes), "{bytes:?}");
            }
        }
        // Two non-digits in a row, including bytes that carry into the next when 0x76 is added.
        for (x, y) in [(0xFF, 0xFF), (0x8A, b'0'), (b'/', b':'), (0xB9, 0x39), (b'0' ^ 0x80, b'9')] {
            for at in 0..7 {
                let mut bytes = *b"27182818";
                bytes[at] = x;
                bytes[at + 1] = y;
                assert_eq!(run(bytes), naive(bytes), "{bytes:?}");
            }
        }
    }

    #[test]
    fn a_refused_leaf_stops_the_scan() {
        let mut seen = 0;
        let outcome = scan("[1, 2, 3]", &mut |_| {
            seen += 1;
            seen < 2
        });
        assert_eq!((outcome, seen), (Scan::Refused, 2));
    }

    #[test]
    fn scan_agrees_with_serde_json_bit_for_bit() {
        let edge = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "-18446744073709551615",
            "0.1",
            "0.2",
            "0.3",
            "0.10000000149011612",
            "3.4028234663852886e+38",
            "1.1754943508222875e-38",
            "1e22",
            "1e-22",
            "9007199254740993",
            "9007199254740993.0",
            "18446744073709551615e-5",
            "123456789012345678.9",
            "1E5",
            "1e+5",
            "2.5E-3",
            "-7.0e0",
            "1e0000000000000000022",
            "0.0000000000000000000001",
            "100000000000000000000000e-22",
            // Around the eight-digits-at-a-time step and where u64 runs out.
            "12345678",
            "123456789",
            "-98765432.10987654",
            "0.12345678",
            "0.123456789",
            "0.1234567890123456",
            "99999999.99999999",
            "1234567890123456789",
            "12345678901234567890",
            "18446744073709551616",
            "1844674407370955161.5",
            "0.18446744073709551615",
            "0.18446744073709551616",
        ];
        for raw in edge {
            check_agreement(raw);
            check_agreement(&format!("[{raw}, [{raw}]]"));
        }
        // Fractions of every length up to past u64, ending every way a number can, with and
        // without eight more bytes after them.
        let fraction_digits = "31415926535897932384626433";
        for len in 1..=fraction_digits.len() {
            for int in ["0", "7", "-42", "18446744073"] {
                for end in ["", "e2", "E-7", "e+30"] {
                    let raw = format!("{int}.{}{end}", &fraction_digits[..len]);
                    if int == "0" && end.is_empty() && len <= 19 {
                        // Within scan's exact range, so the check below is not vacuous.
                        assert_eq!(scanned(&format!("[{raw}, 1]")).0, Scan::Done, "{raw}");
                    }
                    check_agreement(&raw);
                    check_agreement(&format!("[{raw},{raw} ,{raw}]"));
                    check_agreement(&format!("[[{raw}]]    "));
                }
            }
        }
        // Numbers as clients print them: floats from f32 and f64 through Python's repr and
        // printf-style formats, over many magnitudes.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut texts = Vec::new();
        for _ in 0..20_000 {
            let bits = next();
            let x64 = f64::from_bits(bits);
            let x32 = f32::from_bits(bits as u32);
            let scale = 10f64.powi((bits % 40) as i32 - 20);
            let y = (bits >> 11) as f64 / (1u64 << 53) as f64 * scale;
            for x in [x64, f64::from(x32), y, -y, y as f32 as f64] {
                if x.is_finite() {
                    texts.push(format!("{x}"));
                    texts.push(format!("{x:e}"));
                    texts.push(format!("{x:.6}"));
                    texts.push(format!("{x:.17e}"));
                }
            }
        }
        let mut taken = 0;
        for raw in &texts {
            check_agreement(raw);
            taken += usize::from(scanned(raw).0 == Scan::Done);
        }
        // The check above is only as strong as how much scan takes.
        assert!(taken * 2 > texts.len(), "scan took only {taken} of {} numbers", texts.len());
    }
}
