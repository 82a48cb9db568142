//! The vendor's ICP identity: an Ed25519 key whose self-authenticating principal is the vendor's
//! OfficeX user (`VENDOR_ID` = `UserID_<principal>`).
//!
//! Two sources (SPEC §6):
//! - `VENDOR_OFFICEX_SEED_PHRASE`, derived exactly as officex.app derives a profile's key: BIP-39 seed
//!   of the phrase (PBKDF2-HMAC-SHA512, 2048 rounds, salt `"mnemonic"`, no word-list or checksum
//!   check), then SLIP-0010 Ed25519 along `m/44'/223'/0'/0'/0'`;
//! - `VENDOR_IDENTITY_PEM`, a dfx-style Ed25519 PKCS#8 PEM, as a file path or the PEM text.
//!
//! Key material never leaves this module except as signatures; `Debug` shows the principal only.

use std::fmt;

use hmac::{Hmac, Mac};
use ic_agent::Identity;
use ic_agent::export::Principal;
use ic_agent::identity::BasicIdentity;
use secrecy::ExposeSecret;
use sha2::Sha512;

use super::OfficexError;
use crate::config::OfficexConfig;

type HmacSha512 = Hmac<Sha512>;

/// The environment variable of the seed phrase source.
pub const SEED_PHRASE_VAR: &str = "VENDOR_OFFICEX_SEED_PHRASE";
/// The environment variable of the PEM source.
pub const PEM_VAR: &str = "VENDOR_IDENTITY_PEM";

/// officex.app's derivation path, `m/44'/223'/0'/0'/0'` (every step hardened, as SLIP-0010 Ed25519
/// requires).
pub const OFFICEX_PATH: [u32; 5] = [44, 223, 0, 0, 0];

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410); the raw key follows.
pub const ED25519_DER_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

const HARDENED: u32 = 0x8000_0000;

fn hmac_sha512(key: &[u8]) -> HmacSha512 {
    match HmacSha512::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// PBKDF2-HMAC-SHA512 with a 64-byte output (one block).
fn pbkdf2_hmac_sha512(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 64] {
    let keyed = hmac_sha512(password);
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 64] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..rounds {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

/// The BIP-39 seed of a phrase (no word-list or checksum validation, as officex.app).
/// The phrase must already be normalised (see [`normalize_phrase`]).
pub fn bip39_seed(phrase: &str, passphrase: &str) -> [u8; 64] {
    let salt = format!("mnemonic{passphrase}");
    pbkdf2_hmac_sha512(phrase.as_bytes(), salt.as_bytes(), 2048)
}

/// A SLIP-0010 extended private key. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtendedKey {
    pub key: [u8; 32],
    pub chain_code: [u8; 32],
}

impl fmt::Debug for ExtendedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExtendedKey(***)")
    }
}

impl ExtendedKey {
    fn from_hmac(mac: HmacSha512) -> Self {
        let i: [u8; 64] = mac.finalize().into_bytes().into();
        let mut key = [0u8; 32];
        let mut chain_code = [0u8; 32];
        key.copy_from_slice(&i[..32]);
        chain_code.copy_from_slice(&i[32..]);
        Self { key, chain_code }
    }

    /// SLIP-0010 Ed25519 master key of a seed.
    pub fn ed25519_master(seed: &[u8]) -> Self {
        let mut mac = hmac_sha512(b"ed25519 seed");
        mac.update(seed);
        Self::from_hmac(mac)
    }

    /// The hardened child `index` (the hardened bit is added; Ed25519 has only hardened children).
    pub fn ed25519_child(&self, index: u32) -> Self {
        let mut mac = hmac_sha512(&self.chain_code);
        mac.update(&[0u8]);
        mac.update(&self.key);
        mac.update(&(index | HARDENED).to_be_bytes());
        Self::from_hmac(mac)
    }

    /// The key at `path` (each index hardened) below the master key of `seed`.
    pub fn ed25519_derive(seed: &[u8], path: &[u32]) -> Self {
        path.iter().fold(Self::ed25519_master(seed), |key, index| {
            key.ed25519_child(*index)
        })
    }
}

/// Whitespace runs collapsed to single spaces (officex.app's phrases are single-spaced words; a
/// pasted phrase with extra spaces derives the same key). Only ASCII is accepted: BIP-39 would need
/// NFKD normalisation for anything else, and officex.app's English word list is ASCII.
pub fn normalize_phrase(phrase: &str) -> Result<String, OfficexError> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    if words.is_empty() {
        return Err(OfficexError::identity(
            SEED_PHRASE_VAR,
            "the phrase is empty",
        ));
    }
    if !phrase.is_ascii() {
        return Err(OfficexError::identity(
            SEED_PHRASE_VAR,
            "the phrase must be plain ASCII words (the officex.app profile's seed phrase)",
        ));
    }
    Ok(words.join(" "))
}

/// The vendor's signing identity.
pub struct VendorIdentity {
    identity: BasicIdentity,
    principal: Principal,
    public_key: [u8; 32],
    source: &'static str,
}

impl fmt::Debug for VendorIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendorIdentity")
            .field("principal", &self.principal.to_text())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl VendorIdentity {
    /// From an officex.app profile's seed phrase.
    pub fn from_seed_phrase(phrase: &str) -> Result<Self, OfficexError> {
        let phrase = normalize_phrase(phrase)?;
        let seed = bip39_seed(&phrase, "");
        let key = ExtendedKey::ed25519_derive(&seed, &OFFICEX_PATH);
        Self::from_basic(BasicIdentity::from_raw_key(&key.key), SEED_PHRASE_VAR)
    }

    /// From a dfx-style Ed25519 PEM: the PEM text itself (literal `\n` escapes accepted) or a path.
    pub fn from_pem(value: &str) -> Result<Self, OfficexError> {
        let value = value.trim();
        let bytes = if value.contains("-----BEGIN") {
            value.replace("\\n", "\n").into_bytes()
        } else {
            std::fs::read(value).map_err(|e| {
                OfficexError::identity(PEM_VAR, format!("cannot read the PEM file {value:?}: {e}"))
            })?
        };
        if String::from_utf8_lossy(&bytes).contains("BEGIN EC PRIVATE KEY") {
            return Err(OfficexError::identity(
                PEM_VAR,
                "this is a secp256k1 key; OfficeX SIGNATURE tokens need an Ed25519 identity \
                 (a PKCS#8 PEM starting with -----BEGIN PRIVATE KEY-----)",
            ));
        }
        let identity = BasicIdentity::from_pem(&bytes).map_err(|_| {
            OfficexError::identity(
                PEM_VAR,
                "not an Ed25519 PKCS#8 PEM (expected a dfx identity.pem starting with \
                 -----BEGIN PRIVATE KEY-----)",
            )
        })?;
        Self::from_basic(identity, PEM_VAR)
    }

    /// From a raw 32-byte Ed25519 private key (RFC 8032).
    pub fn from_raw_key(key: &[u8; 32]) -> Self {
        // A raw key always has a 44-byte DER public key.
        match Self::from_basic(BasicIdentity::from_raw_key(key), "raw key") {
            Ok(identity) => identity,
            Err(_) => unreachable!("an Ed25519 identity has a DER public key"),
        }
    }

    /// The identity `config` names: `None` when neither variable is set.
    pub fn from_config(config: &OfficexConfig) -> Result<Option<Self>, OfficexError> {
        match (&config.seed_phrase, &config.identity_pem) {
            (Some(_), Some(_)) => Err(OfficexError::identity(
                SEED_PHRASE_VAR,
                format!("set either {SEED_PHRASE_VAR} or {PEM_VAR}, not both"),
            )),
            (Some(phrase), None) => Self::from_seed_phrase(phrase.expose_secret()).map(Some),
            (None, Some(pem)) => Self::from_pem(pem.expose_secret()).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn from_basic(identity: BasicIdentity, source: &'static str) -> Result<Self, OfficexError> {
        let der = identity.public_key().unwrap_or_default();
        let raw = der
            .strip_prefix(&ED25519_DER_PREFIX[..])
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .ok_or_else(|| OfficexError::identity(source, "the key is not an Ed25519 key"))?;
        let principal = identity
            .sender()
            .map_err(|e| OfficexError::identity(source, e))?;
        Ok(Self {
            identity,
            principal,
            public_key: raw,
            source,
        })
    }

    /// The self-authenticating principal of the DER-wrapped public key.
    pub fn principal(&self) -> Principal {
        self.principal
    }

    /// `UserID_<principal>`: what `VENDOR_ID` must be.
    pub fn user_id(&self) -> String {
        format!("UserID_{}", self.principal.to_text())
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The variable the identity came from.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, OfficexError> {
        self.identity
            .sign_arbitrary(message)
            .map_err(OfficexError::Signing)?
            .signature
            .ok_or_else(|| OfficexError::Signing("the identity returned no signature".into()))
    }

    /// Start-up check: `VENDOR_ID` must be set and name this identity.
    pub fn check_vendor_id(&self, vendor_id: Option<&str>) -> Result<(), OfficexError> {
        let expected = self.user_id();
        match vendor_id {
            None => Err(OfficexError::VendorIdMissing {
                source_var: self.source,
                expected,
            }),
            Some(id) if id != expected => Err(OfficexError::VendorIdMismatch {
                source_var: self.source,
                configured: id.to_owned(),
                expected,
            }),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip39_seed_matches_the_published_vectors() {
        let phrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                      abandon about";
        // BIP-39 reference vector (passphrase "TREZOR").
        assert_eq!(
            hex::encode(bip39_seed(phrase, "TREZOR")),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
        // Empty passphrase, as officex.app.
        assert_eq!(
            hex::encode(bip39_seed(phrase, "")),
            "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4"
        );
        // No word-list or checksum validation: any words derive a seed.
        let a = bip39_seed("not a real bip39 phrase at all", "");
        assert_ne!(a, bip39_seed("not a real bip39 phrase at alm", ""));
    }

    /// SLIP-0010 "Test vector 1 for ed25519" and "Test vector 2 for ed25519":
    /// (path, chain code, private key, public key with SLIP-0010's 00 prefix).
    #[test]
    fn slip10_matches_the_published_ed25519_vectors() {
        type Vector = (
            &'static [u32],
            &'static str,
            &'static str,
            Option<&'static str>,
        );
        let v1: &[Vector] = &[
            (
                &[],
                "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
                "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
                Some("00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"),
            ),
            (
                &[0],
                "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
                "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
                Some("008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c"),
            ),
            (
                &[0, 1],
                "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
                "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
                Some("001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187"),
            ),
            (
                &[0, 1, 2],
                "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
                "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
                Some("00ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1"),
            ),
            (
                &[0, 1, 2, 2],
                "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
                "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
                Some("008abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c"),
            ),
            (
                &[0, 1, 2, 2, 1_000_000_000],
                "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
                "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
                Some("003c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a"),
            ),
        ];
        let v2: &[Vector] = &[
            (
                &[],
                "ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
                "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
                None,
            ),
            (
                &[0],
                "0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d",
                "1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635",
                None,
            ),
            (
                &[0, 2_147_483_647],
                "138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f",
                "ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4",
                None,
            ),
            (
                &[0, 2_147_483_647, 1],
                "73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90",
                "3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c",
                None,
            ),
            (
                &[0, 2_147_483_647, 1, 2_147_483_646],
                "0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a",
                "5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72",
                None,
            ),
            (
                &[0, 2_147_483_647, 1, 2_147_483_646, 2],
                "5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
                "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
                None,
            ),
        ];
        for (seed, vectors) in [
            ("000102030405060708090a0b0c0d0e0f", v1),
            (
                "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542",
                v2,
            ),
        ] {
            let seed = hex::decode(seed).unwrap();
            for (path, chain_code, private, public) in vectors {
                let key = ExtendedKey::ed25519_derive(&seed, path);
                assert_eq!(hex::encode(key.chain_code), *chain_code, "{path:?}");
                assert_eq!(hex::encode(key.key), *private, "{path:?}");
                if let Some(public) = public {
                    let identity = VendorIdentity::from_raw_key(&key.key);
                    assert_eq!(
                        format!("00{}", hex::encode(identity.public_key())),
                        *public,
                        "{path:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn seed_phrase_gives_the_icp_principal_of_the_standard_path() {
        // dfinity/icp-cli's test `identity_import_seed_curve`: this phrase imported with the
        // ed25519 curve (SLIP-0010, m/44'/223'/0'/0'/0') has this principal.
        let identity = VendorIdentity::from_seed_phrase(
            "equip will roof matter pink blind book anxiety banner elbow sun young",
        )
        .unwrap();
        assert_eq!(
            identity.principal().to_text(),
            "z2yk5-gbsi4-5eudl-y5q6u-qaqmf-37gjy-r66iy-oiqvb-d5nbr-5odxa-4qe"
        );
        assert_eq!(
            identity.user_id(),
            "UserID_z2yk5-gbsi4-5eudl-y5q6u-qaqmf-37gjy-r66iy-oiqvb-d5nbr-5odxa-4qe"
        );
        // Extra whitespace derives the same key.
        let spaced = VendorIdentity::from_seed_phrase(
            "  equip will roof matter pink blind\tbook anxiety banner elbow sun  young ",
        )
        .unwrap();
        assert_eq!(spaced.principal(), identity.principal());
        // The principal is the self-authenticating principal of the DER-wrapped key.
        let mut der = ED25519_DER_PREFIX.to_vec();
        der.extend_from_slice(&identity.public_key());
        assert_eq!(Principal::self_authenticating(&der), identity.principal());
    }

    #[test]
    fn bad_seed_phrases_are_refused_clearly() {
        for phrase in ["   ", "caf\u{e9} au lait"] {
            let err = VendorIdentity::from_seed_phrase(phrase).unwrap_err();
            assert!(err.to_string().starts_with(SEED_PHRASE_VAR), "{err}");
        }
    }

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIAgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYn\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn pem_inline_escaped_or_from_a_file() {
        let raw: [u8; 32] = core::array::from_fn(|i| (i + 8) as u8);
        let expected = VendorIdentity::from_raw_key(&raw).principal();
        assert_eq!(VendorIdentity::from_pem(PEM).unwrap().principal(), expected);
        let escaped = PEM.replace('\n', "\\n");
        assert_eq!(
            VendorIdentity::from_pem(&escaped).unwrap().principal(),
            expected
        );
        let dir = std::env::temp_dir().join(format!("vs-pem-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, PEM).unwrap();
        let from_file = VendorIdentity::from_pem(dir.to_str().unwrap()).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(from_file.principal(), expected);
        assert_eq!(from_file.source(), PEM_VAR);
    }

    #[test]
    fn bad_pems_are_refused_without_echoing_them() {
        let secp = "-----BEGIN EC PRIVATE KEY-----\nMHQCAQEEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END EC PRIVATE KEY-----";
        for value in [
            secp,
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----",
            "/nonexistent/identity.pem",
        ] {
            let err = VendorIdentity::from_pem(value).unwrap_err().to_string();
            assert!(err.starts_with(PEM_VAR), "{err}");
            assert!(!err.contains("MHQCAQ") && !err.contains("bm90"), "{err}");
        }
    }

    #[test]
    fn signatures_verify_and_debug_hides_the_key() {
        let raw = [7u8; 32];
        let identity = VendorIdentity::from_raw_key(&raw);
        let signature = identity.sign(b"hello").unwrap();
        let public = ic_ed25519::PublicKey::deserialize_raw(&identity.public_key()).unwrap();
        public.verify_signature(b"hello", &signature).unwrap();
        assert!(public.verify_signature(b"hellO", &signature).is_err());
        let debug = format!("{identity:?}");
        assert!(debug.contains(&identity.principal().to_text()), "{debug}");
        assert!(!debug.contains(&hex::encode(raw)), "{debug}");
        assert!(!debug.contains("0707"), "{debug}");
        assert_eq!(
            format!("{:?}", ExtendedKey::ed25519_master(&[1; 16])),
            "ExtendedKey(***)"
        );
    }

    #[test]
    fn vendor_id_must_name_the_identity() {
        let identity = VendorIdentity::from_raw_key(&[9; 32]);
        identity.check_vendor_id(Some(&identity.user_id())).unwrap();
        let missing = identity.check_vendor_id(None).unwrap_err().to_string();
        assert!(
            missing.contains("VENDOR_ID") && missing.contains(&identity.user_id()),
            "{missing}"
        );
        let other = VendorIdentity::from_raw_key(&[10; 32]).user_id();
        let mismatch = identity
            .check_vendor_id(Some(&other))
            .unwrap_err()
            .to_string();
        assert!(
            mismatch.contains("VENDOR_ID") && mismatch.contains(&other),
            "{mismatch}"
        );
    }
}
