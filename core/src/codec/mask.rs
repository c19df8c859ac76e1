//! Masking and unmasking payloads in place (RFC 6455 section 5.3): the same XOR both ways.
//!
//! [`apply`] works a machine word at a time: a scalar head up to the first 8-byte boundary, then
//! whole `u64`s XORed with the key repeated and rotated to the head's phase, then a scalar
//! tail. Because 8 is a multiple of 4 the key's phase is the same for every word, so the hot
//! loop is one load, one XOR and one store per 8 bytes (which the compiler may widen further).
//! [`apply_bytewise`] is the definition, kept as the reference the tests compare against.
//! Neither allocates; neither knows anything of frames.

/// XORs `buf` with `key`, where `buf[0]` is byte `offset` of the payload. Masking a payload
/// in pieces with the right offsets gives the same result as masking it whole.
#[inline]
pub fn apply_at(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut phase = offset & 3;
    // `align_offset` may answer "cannot" (usize::MAX); then everything goes through the head.
    let head = buf.as_ptr().align_offset(8).min(buf.len());
    let (head, body) = buf.split_at_mut(head);
    for b in head {
        *b ^= key[phase];
        phase = (phase + 1) & 3;
    }

    let mut rotated = [0u8; 8];
    for (i, r) in rotated.iter_mut().enumerate() {
        *r = key[(phase + i) & 3];
    }
    // Native byte order on both sides: the word is only a way to XOR 8 bytes at once.
    let word_key = u64::from_ne_bytes(rotated);
    let mut words = body.chunks_exact_mut(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_ne_bytes(w) ^ word_key;
        word.copy_from_slice(&x.to_ne_bytes());
    }
    // Whole words leave the phase where it was.
    for b in words.into_remainder() {
        *b ^= key[phase];
        phase = (phase + 1) & 3;
    }
}

/// XORs a whole payload with `key`: masks a payload, or unmasks a masked one.
#[inline]
pub fn apply(buf: &mut [u8], key: [u8; 4]) {
    apply_at(buf, key, 0);
}

/// The byte-at-a-time definition of [`apply_at`]; slow, and the reference for tests.
pub fn apply_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_unmasks_to_hello() {
        // RFC 6455 section 5.7.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn every_alignment_length_and_offset_matches_the_reference() {
        let key = [0xA1, 0x07, 0x5C, 0xFF];
        let source: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for start in 0..16 {
            for len in 0..(source.len() - start) {
                for offset in 0..5 {
                    let mut fast = source.clone();
                    let mut slow = source.clone();
                    apply_at(&mut fast[start..start + len], key, offset);
                    apply_bytewise(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        apply(&mut whole, key);
        let mut pieces = data.clone();
        let (a, rest) = pieces.split_at_mut(13);
        let (b, c) = rest.split_at_mut(100);
        apply_at(a, key, 0);
        apply_at(b, key, 13);
        apply_at(c, key, 113);
        assert_eq!(pieces, whole);
        assert_ne!(whole, data, "a non-zero key changes the bytes");
    }
}
