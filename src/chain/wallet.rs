//! Keys: deposit addresses derived from the vendor's mnemonic (BIP-44 `m/44'/60'/0'/0/{index}`) and the
//! gas wallet. Nothing here is ever stored, logged or returned: `Debug` is redacted and only addresses
//! leave this module.

use std::fmt;

use alloy::primitives::{Address, address};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::local::coins_bip39::{English, Mnemonic};
use secrecy::ExposeSecret;

use super::ChainError;
use crate::config::Config;

/// The account-level BIP-44 path; deposit `i` is its child `i`.
pub const ACCOUNT_PATH: &str = "m/44'/60'/0'/0";

/// The largest deposit index (non-hardened BIP-32 children).
pub const MAX_INDEX: u32 = 0x7FFF_FFFF;

/// Anvil/Hardhat's well-known development mnemonic: anyone can spend from its accounts.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// The first ten accounts of [`DEV_MNEMONIC`] (anvil's funded dev accounts).
pub const DEV_ADDRESSES: [Address; 10] = [
    address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
    address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
    address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
    address!("90F79bf6EB2c4f870365E785982E1f101E93b906"),
    address!("15d34AAf54267DB7D7c367839AAf71A00a2C6A65"),
    address!("9965507D1a55bcC2695C58ba16FB37d819B0A4dc"),
    address!("976EA74026E726554dB657fA54763abd0C3a0aa9"),
    address!("14dC79964da2C08b23698B3D3cc7Ca32193d9955"),
    address!("23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"),
    address!("a0Ee7A142d267C1f36714E4a8F75612F20a79720"),
];

/// Chain ids on which development keys are acceptable (anvil/hardhat, ganache).
pub const DEV_CHAIN_IDS: [u64; 2] = [31337, 1337];

/// Derives deposit keys. Holds the account-level extended key (derived once from the mnemonic, so
/// each address costs one child derivation instead of a PBKDF2 run).
#[derive(Clone)]
pub struct DepositKeys {
    account: coins_bip32::xkeys::XPriv,
}

impl fmt::Debug for DepositKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DepositKeys(***)")
    }
}

impl DepositKeys {
    /// From a BIP-39 English phrase (checksum verified).
    pub fn from_phrase(phrase: &str) -> Result<Self, ChainError> {
        let normalized = normalize(phrase);
        let mnemonic = Mnemonic::<English>::new_from_phrase(&normalized).map_err(|_| {
            ChainError::Wallet(
                "DEPOSIT_MNEMONIC is not a valid BIP-39 English phrase (word list or checksum)"
                    .into(),
            )
        })?;
        let account = mnemonic
            .derive_key(ACCOUNT_PATH, None)
            .map_err(|_| ChainError::Wallet("cannot derive the deposit account key".into()))?;
        Ok(Self { account })
    }

    /// The signer of deposit `index`.
    pub fn signer(&self, index: u32) -> Result<PrivateKeySigner, ChainError> {
        if index > MAX_INDEX {
            return Err(ChainError::Wallet(format!(
                "deposit index {index} is out of range"
            )));
        }
        let child = self
            .account
            .derive_path(format!("m/{index}").as_str())
            .map_err(|_| ChainError::Wallet(format!("cannot derive deposit key {index}")))?;
        let key: &coins_bip32::ecdsa::SigningKey = child.as_ref();
        PrivateKeySigner::from_slice(&key.to_bytes())
            .map_err(|_| ChainError::Wallet(format!("cannot derive deposit key {index}")))
    }

    /// The address of deposit `index`.
    pub fn address(&self, index: u32) -> Result<Address, ChainError> {
        Ok(self.signer(index)?.address())
    }
}

fn normalize(phrase: &str) -> String {
    phrase
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a phrase is the public development mnemonic.
pub fn is_dev_mnemonic(phrase: &str) -> bool {
    normalize(phrase) == DEV_MNEMONIC
}

/// The gas wallet: pays sweep gas. Redacted `Debug`.
#[derive(Clone)]
pub struct GasTank {
    pub signer: PrivateKeySigner,
}

impl fmt::Debug for GasTank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GasTank({})", self.signer.address())
    }
}

impl GasTank {
    pub fn address(&self) -> Address {
        self.signer.address()
    }
}

/// The wallets from configuration, checked: a valid mnemonic, a gas key matching
/// `VENDOR_GAS_TANK_ADDRESS`, and no public development key on a real chain.
pub fn load(config: &Config) -> Result<(Option<DepositKeys>, Option<GasTank>), ChainError> {
    let real_chain = config
        .chains
        .iter()
        .find(|c| !DEV_CHAIN_IDS.contains(&c.chain_id));
    let keys = match &config.wallets.deposit_mnemonic {
        None => None,
        Some(phrase) => {
            let phrase = phrase.expose_secret();
            if let Some(chain) = real_chain
                && is_dev_mnemonic(phrase)
            {
                return Err(ChainError::Wallet(format!(
                    "DEPOSIT_MNEMONIC is the public development mnemonic (\"test … junk\"); refusing to run on chain {} ({}). Generate your own phrase.",
                    chain.chain_id, chain.name
                )));
            }
            Some(DepositKeys::from_phrase(phrase)?)
        }
    };
    let gas = match &config.wallets.gas_tank_private_key {
        None => None,
        Some(key) => {
            let signer: PrivateKeySigner = key.expose_secret().trim().parse().map_err(|_| {
                ChainError::Wallet(
                    "VENDOR_GAS_TANK_PRIVATE_KEY is not a 32-byte hex private key".into(),
                )
            })?;
            if let Some(expected) = config.wallets.gas_tank_address
                && expected != signer.address()
            {
                return Err(ChainError::Wallet(format!(
                    "VENDOR_GAS_TANK_ADDRESS is {expected} but VENDOR_GAS_TANK_PRIVATE_KEY belongs to {}",
                    signer.address()
                )));
            }
            if let Some(chain) = real_chain
                && DEV_ADDRESSES.contains(&signer.address())
            {
                return Err(ChainError::Wallet(format!(
                    "VENDOR_GAS_TANK_PRIVATE_KEY is a public development key ({}); refusing to run on chain {} ({})",
                    signer.address(),
                    chain.chain_id,
                    chain.name
                )));
            }
            Some(GasTank { signer })
        }
    };
    if let (Some(treasury), Some(chain)) = (config.wallets.treasury_address, real_chain)
        && DEV_ADDRESSES.contains(&treasury)
    {
        return Err(ChainError::Wallet(format!(
            "VENDOR_TREASURY_ADDRESS is a public development account ({treasury}); refusing to sweep to it on chain {} ({})",
            chain.chain_id, chain.name
        )));
    }
    Ok((keys, gas))
}

/// The address of deposit `index` for a phrase (the `address` CLI command).
pub fn derive_address(phrase: &str, index: u32) -> Result<Address, ChainError> {
    DepositKeys::from_phrase(phrase)?.address(index)
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::MnemonicBuilder;

    use super::*;

    #[test]
    fn cached_account_derivation_matches_the_mnemonic_builder() {
        let keys = DepositKeys::from_phrase(DEV_MNEMONIC).unwrap();
        for (i, expected) in DEV_ADDRESSES.iter().enumerate() {
            assert_eq!(keys.address(i as u32).unwrap(), *expected, "index {i}");
        }
        let phrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        let keys = DepositKeys::from_phrase(phrase).unwrap();
        for i in [0u32, 7, 1000] {
            let built = MnemonicBuilder::<English>::default()
                .phrase(phrase)
                .derivation_path(format!("{ACCOUNT_PATH}/{i}"))
                .unwrap()
                .build()
                .unwrap();
            assert_eq!(keys.address(i).unwrap(), built.address());
        }
        assert!(keys.signer(MAX_INDEX + 1).is_err());
    }

    #[test]
    fn invalid_phrases_and_dev_keys_are_refused() {
        assert!(DepositKeys::from_phrase("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon").is_err());
        assert!(is_dev_mnemonic(
            "  TEST test test test test test test test test test test junk "
        ));
        let debug = format!("{:?}", DepositKeys::from_phrase(DEV_MNEMONIC).unwrap());
        assert_eq!(debug, "DepositKeys(***)");
    }
}
