//! Fixed-width base62 for token bodies and checksums (`0-9A-Za-z`).

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes a big-endian unsigned integer as exactly `width` base62 digits.
/// `width` must be large enough for the value; callers use fixed widths proven by tests.
pub(crate) fn encode_fixed(bytes: &[u8], width: usize, out: &mut String) {
    let mut number = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let accumulator = (remainder << 8) | u32::from(*byte);
            *byte = (accumulator / 62) as u8;
            remainder = accumulator % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    out.extend(digits.iter().map(|&digit| digit as char));
    zeroize::Zeroize::zeroize(&mut number);
    zeroize::Zeroize::zeroize(&mut digits);
}

/// Whether `byte` is a base62 digit.
pub(crate) fn is_digit(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

/// Encodes a `u32` as exactly 6 base62 digits (62^6 > 2^32).
pub(crate) fn encode_u32(value: u32, out: &mut String) {
    encode_fixed(&value.to_be_bytes(), 6, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_hold_their_largest_values() {
        let mut out = String::new();
        encode_fixed(&[0xff; 32], 43, &mut out);
        assert_eq!(out.len(), 43);
        assert_ne!(out.as_bytes()[0], b'0', "43 digits are needed for 2^256-1");
        let mut out = String::new();
        encode_u32(u32::MAX, &mut out);
        assert_eq!(out, "4gfFC3");
        let mut out = String::new();
        encode_u32(0, &mut out);
        assert_eq!(out, "000000");
    }
}
