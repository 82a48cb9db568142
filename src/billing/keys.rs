//! API keys: high-entropy, prefixed for display, stored only as SHA-256 hashes.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// What a key authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The customer's key for one purchase (read balance, topup, history).
    Customer,
    /// A vendor-wide billing token (meter-usage on any purchase), created from the CLI.
    BillingToken,
}

impl KeyKind {
    /// The visible prefix, so a leaked key is recognisable.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Customer => "vsc_",
            Self::BillingToken => "vst_",
        }
    }
}

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct NewKey {
    pub secret: SecretString,
    pub hash: Vec<u8>,
    /// First characters, safe to show in lists (`vsc_3kF9a…`).
    pub display_prefix: String,
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// 32 random bytes (≈ 190 bits after base62) behind the kind's prefix.
pub fn generate(kind: KeyKind) -> NewKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut key = String::with_capacity(4 + 43);
    key.push_str(kind.prefix());
    // Rejection-free base62 of each byte pair keeps the output uniform enough for 32 bytes of entropy:
    // encode the bytes as a big number in base 62.
    let mut digits = Vec::with_capacity(44);
    let mut num = bytes.to_vec();
    while num.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in &mut num {
            let acc = (rem << 8) | u32::from(*b);
            *b = u8::try_from(acc / 62).unwrap_or(0);
            rem = acc % 62;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    digits.resize(43, b'0');
    key.extend(digits.iter().rev().map(|d| char::from(*d)));
    let display_prefix = key.chars().take(12).collect();
    NewKey {
        hash: hash(&key),
        secret: SecretString::from(key),
        display_prefix,
    }
}

/// The stored form of a key.
pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Constant-time comparison of a presented key with a stored hash.
pub fn matches(presented: &str, stored_hash: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    hash(presented).ct_eq(stored_hash).into()
}

/// The secret text of a key (only for the one response that delivers it).
pub fn reveal(key: &SecretString) -> &str {
    key.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_unique_and_verifiable() {
        let a = generate(KeyKind::Customer);
        let b = generate(KeyKind::Customer);
        let text = reveal(&a.secret);
        assert!(text.starts_with("vsc_"));
        assert_eq!(text.len(), 47);
        assert!(text[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(text, reveal(&b.secret));
        assert!(matches(text, &a.hash));
        assert!(!matches(text, &b.hash));
        assert!(a.display_prefix.len() == 12 && text.starts_with(&a.display_prefix));
    }
}
