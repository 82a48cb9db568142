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
    /// An operator of the console (`vendor-server operators create`), with a role.
    Operator,
}

impl KeyKind {
    /// The visible prefix, so a leaked key is recognisable.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Customer => "vsc_",
            Self::BillingToken => "vst_",
            Self::Operator => "vso_",
        }
    }
}

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct NewKey {
    pub secret: SecretString,
    pub hash: Vec<u8>,
    /// First characters, safe to show in lists (`vsc_3kF9a…`).
    pub display_prefix: String,
    /// The last 4 characters, the credential's hint on the customer page.
    pub hint: String,
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
        hint: hint(&key),
        hash: hash(&key),
        secret: SecretString::from(key),
        display_prefix,
    }
}

/// The last 4 characters of a credential: enough for its owner to tell which one it is, nothing
/// for anyone else.
pub fn hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
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

/// Whether `presented` is the key whose hash is `stored`. A missing owner (`None`: unknown
/// purchase) costs the same comparison, against a hash no key has, so it takes as long as a wrong
/// key and a leaked id cannot be confirmed by timing.
pub fn matches_stored(presented: &str, stored: Option<&[u8]>) -> bool {
    /// No key hashes to this (SHA-256 preimage); stands in for an unknown owner's hash.
    const NO_KEY: [u8; 32] = [0; 32];
    let hit = matches(presented, stored.unwrap_or(&NO_KEY));
    hit & stored.is_some()
}

/// The secret text of a key (only for the one response that delivers it).
pub fn reveal(key: &SecretString) -> &str {
    key.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Median time of `f` over many runs.
    fn median_ns(mut f: impl FnMut() -> bool) -> u128 {
        let mut times: Vec<u128> = (0..2001)
            .map(|_| {
                let start = std::time::Instant::now();
                std::hint::black_box(f());
                start.elapsed().as_nanos()
            })
            .collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    #[test]
    fn an_unknown_owner_costs_the_same_as_a_wrong_key() {
        let stored = generate(KeyKind::Customer).hash;
        let wrong = generate(KeyKind::Customer);
        let wrong = wrong.secret.expose_secret();
        assert!(!matches_stored(wrong, None));
        assert!(!matches_stored(wrong, Some(&stored)));
        assert!(matches_stored(wrong, Some(&hash(wrong))));
        for _ in 0..3 {
            let unknown = median_ns(|| matches_stored(std::hint::black_box(wrong), None));
            let known = median_ns(|| matches_stored(std::hint::black_box(wrong), Some(&stored)));
            // The same work: a hash and a comparison either way (a bare `false` is ~100x faster).
            if unknown * 2 >= known {
                return;
            }
        }
        panic!("an unknown owner answers faster than a wrong key");
    }

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
