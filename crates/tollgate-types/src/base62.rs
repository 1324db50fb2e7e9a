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

/// Encodes a `u32` as exactly 6 base62 digits (62^6 > 2^32), on the stack: this runs on every verify.
pub(crate) fn encode_u32(mut value: u32) -> [u8; 6] {
    let mut digits = [b'0'; 6];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    digits
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
        assert_eq!(&encode_u32(u32::MAX), b"4gfFC3");
        assert_eq!(&encode_u32(0), b"000000");
        let mut out = String::new();
        encode_fixed(&12_345u32.to_be_bytes(), 6, &mut out);
        assert_eq!(out.as_bytes(), encode_u32(12_345), "both encoders agree");
    }
}
