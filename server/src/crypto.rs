//! Secrets derived from the master key, encryption of ID numbers at rest, masking for
//! display, and random codes.

use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::Aead};
use base64::Engine;
use sha2::{Digest, Sha256};

pub struct Secrets {
    pub jwt_key: [u8; 32],
    id_cipher: Aes256Gcm,
}

impl Secrets {
    pub fn new(master: [u8; 32]) -> Self {
        // Separate keys per purpose, so a leaked token key says nothing about ID numbers.
        let jwt_key = derive(&master, b"nuanxin/jwt");
        let id_key = derive(&master, b"nuanxin/id-number");
        Self {
            jwt_key,
            id_cipher: Aes256Gcm::new(&id_key.into()),
        }
    }

    /// base64(nonce || ciphertext)
    pub fn encrypt(&self, plain: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let ct = self
            .id_cipher
            .encrypt(&Nonce::from(nonce), plain.as_bytes())
            .expect("AES-GCM encryption does not fail for short inputs");
        let mut out = nonce.to_vec();
        out.extend(ct);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn decrypt(&self, stored: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(stored)
            .ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self.id_cipher.decrypt(&Nonce::from(nonce), ct).ok()?;
        String::from_utf8(plain).ok()
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(master);
    h.update(label);
    h.finalize().into()
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// An opaque secret for refresh tokens: 32 random bytes, URL-safe.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A code a person can read out or type: 8 characters without look-alikes (0/O, 1/I/L).
pub fn human_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    (0..8)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Normalises a code as typed: case and spaces do not matter.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_uppercase()
}

/// `13812345678` → `138****5678`
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// `11010119900101123X` → `110101********123X`
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// `王芳` → `王*`, `王小明` → `王*明`
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => chars[0].to_string(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// The resident ID number of GB 11643: 17 digits and a check character.
pub fn valid_id_number(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_round_trip_and_are_not_stored_in_clear() {
        let s = Secrets::new([7; 32]);
        let stored = s.encrypt("11010519491231002X");
        assert!(!stored.contains("1101051949"));
        assert_eq!(s.decrypt(&stored).as_deref(), Some("11010519491231002X"));
        // Same plaintext, different ciphertext: equal IDs cannot be spotted in the table.
        assert_ne!(stored, s.encrypt("11010519491231002X"));
        // Another key cannot read it.
        assert_eq!(Secrets::new([8; 32]).decrypt(&stored), None);
    }

    #[test]
    fn masks() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_id_number("11010519491231002X"), "110105********002X");
        assert_eq!(mask_name("王芳"), "王*");
        assert_eq!(mask_name("欧阳建国"), "欧**国");
    }

    #[test]
    fn id_number_checksum() {
        assert!(valid_id_number("11010519491231002X"));
        assert!(valid_id_number("11010519491231002x"));
        assert!(!valid_id_number("110105194912310021"));
        assert!(!valid_id_number("1101051949123100"));
    }

    #[test]
    fn codes_are_readable() {
        let c = human_code();
        assert_eq!(c.len(), 8);
        assert!(!c.contains(['0', 'O', '1', 'I']));
        assert_eq!(normalise_code(" ab-cd 23 "), "ABCD23");
    }
}
