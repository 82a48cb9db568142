//! The drive's SIGNATURE auth token (CANISTER `rest/auth.rs`): base64 of the JSON
//! `{auth_type: "SIGNATURE", challenge, signature}`, where `signature` is the Ed25519 signature over
//! the compact JSON of `challenge` in this field order:
//! `{"timestamp_ms":…,"drive_canister_id":"…","self_auth_principal":[32 bytes],"canonical_principal":"…"}`.
//! The drive accepts a token for 30 s, so one is made for every call.

use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::OfficexError;
use super::identity::VendorIdentity;

/// How long the drive accepts a token after its `timestamp_ms`.
pub const TOKEN_VALIDITY_MS: u64 = 30_000;

/// What is signed. Field order is the wire contract (the drive re-serialises it to verify).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureChallenge {
    pub timestamp_ms: u64,
    pub drive_canister_id: String,
    /// The raw 32-byte Ed25519 public key.
    pub self_auth_principal: Vec<u8>,
    /// The principal's text form.
    pub canonical_principal: String,
}

impl SignatureChallenge {
    /// The exact bytes that are signed (compact JSON).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, OfficexError> {
        serde_json::to_vec(self).map_err(|e| OfficexError::Signing(e.to_string()))
    }
}

/// The decoded token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureToken {
    pub auth_type: String,
    pub challenge: SignatureChallenge,
    pub signature: Vec<u8>,
}

/// The drive's canister id: the org id without its `DriveID_` prefix.
pub fn drive_canister_id(org_id: &str) -> &str {
    org_id.strip_prefix("DriveID_").unwrap_or(org_id)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// A bearer token for the drive of `org_id`, dated `timestamp_ms`. Kept secret: it authenticates
/// as the vendor for 30 s at any drive.
pub fn signature_token(
    identity: &VendorIdentity,
    org_id: &str,
    timestamp_ms: u64,
) -> Result<SecretString, OfficexError> {
    let challenge = SignatureChallenge {
        timestamp_ms,
        drive_canister_id: drive_canister_id(org_id).to_owned(),
        self_auth_principal: identity.public_key().to_vec(),
        canonical_principal: identity.principal().to_text(),
    };
    let signature = identity.sign(&challenge.signed_bytes()?)?;
    let token = SignatureToken {
        auth_type: "SIGNATURE".to_owned(),
        challenge,
        signature,
    };
    let json = serde_json::to_vec(&token).map_err(|e| OfficexError::Signing(e.to_string()))?;
    Ok(SecretString::from(
        base64::engine::general_purpose::STANDARD.encode(json),
    ))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn token_is_base64_json_signed_over_the_compact_challenge() {
        let identity = VendorIdentity::from_raw_key(&[3; 32]);
        let token = signature_token(&identity, "DriveID_abc-def", 1_700_000_000_123).unwrap();
        let json = base64::engine::general_purpose::STANDARD
            .decode(token.expose_secret())
            .unwrap();
        let text = String::from_utf8(json).unwrap();
        assert!(
            text.starts_with(r#"{"auth_type":"SIGNATURE","challenge":{"timestamp_ms":1700000000123,"drive_canister_id":"abc-def","self_auth_principal":["#),
            "{text}"
        );
        let decoded: SignatureToken = serde_json::from_str(&text).unwrap();
        assert_eq!(decoded.challenge.self_auth_principal.len(), 32);
        assert_eq!(
            decoded.challenge.canonical_principal,
            identity.principal().to_text()
        );
        let signed = format!(
            r#"{{"timestamp_ms":1700000000123,"drive_canister_id":"abc-def","self_auth_principal":{},"canonical_principal":"{}"}}"#,
            serde_json::to_string(&identity.public_key().to_vec()).unwrap(),
            identity.principal().to_text()
        );
        let public = ic_ed25519::PublicKey::deserialize_raw(&identity.public_key()).unwrap();
        public
            .verify_signature(signed.as_bytes(), &decoded.signature)
            .unwrap();
        assert!(!format!("{token:?}").contains(token.expose_secret()));
    }

    #[test]
    fn drive_canister_id_strips_the_prefix_only() {
        assert_eq!(drive_canister_id("DriveID_aaaaa-aa"), "aaaaa-aa");
        assert_eq!(drive_canister_id("aaaaa-aa"), "aaaaa-aa");
    }
}
