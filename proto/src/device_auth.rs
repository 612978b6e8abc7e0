//! OpenClaw device identity, exactly as `specs/openclaw-gateway.md` §1.5 describes it:
//! Ed25519 keys, `deviceId` = lowercase hex SHA-256 of the raw 32-byte public key, the
//! `v3` signed payload (with `v2` accepted), ±120 s skew, and the verification order with
//! its detail codes. Pure functions, shared by the gRPC `DeviceService` and the WebSocket
//! shim.

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Largest accepted `device.publicKey` / `device.signature` input, in characters.
pub const MAX_KEY_INPUT: usize = 4096;
/// Allowed distance between `signedAt` and the server clock (`DEVICE_SIGNATURE_SKEW_MS`).
pub const SIGNATURE_SKEW_MS: i64 = 120_000;

/// The device block of a connect (`device{id, publicKey, signature, signedAt, nonce}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceProof {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at_ms: i64,
    pub nonce: String,
}

/// The connect fields that are part of the signed payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedFields<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    /// The role after the default (`operator`) is applied.
    pub role: &'a str,
    /// The requested scopes exactly as sent (order kept).
    pub scopes: &'a [String],
    pub signed_at_ms: i64,
    /// `auth.token` ?? `auth.deviceToken` ?? `auth.bootstrapToken` ?? `""`.
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: &'a str,
    pub device_family: &'a str,
}

/// Why a device proof was refused, in the spec's verification order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    DeviceIdMismatch,
    SignatureExpired,
    NonceRequired,
    NonceMismatch,
    SignatureInvalid,
    PublicKeyInvalid,
}

impl ProofError {
    /// The `details.code` (e.g. `DEVICE_AUTH_SIGNATURE_INVALID`).
    pub fn code(self) -> &'static str {
        match self {
            ProofError::DeviceIdMismatch => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            ProofError::SignatureExpired => "DEVICE_AUTH_SIGNATURE_EXPIRED",
            ProofError::NonceRequired => "DEVICE_AUTH_NONCE_REQUIRED",
            ProofError::NonceMismatch => "DEVICE_AUTH_NONCE_MISMATCH",
            ProofError::SignatureInvalid => "DEVICE_AUTH_SIGNATURE_INVALID",
            ProofError::PublicKeyInvalid => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
        }
    }

    /// The `details.reason` (e.g. `device-signature`).
    pub fn reason(self) -> &'static str {
        match self {
            ProofError::DeviceIdMismatch => "device-id-mismatch",
            ProofError::SignatureExpired => "device-signature-stale",
            ProofError::NonceRequired => "device-nonce-missing",
            ProofError::NonceMismatch => "device-nonce-mismatch",
            ProofError::SignatureInvalid => "device-signature",
            ProofError::PublicKeyInvalid => "device-public-key",
        }
    }

    /// The error message (also the WebSocket close reason).
    pub fn message(self) -> &'static str {
        match self {
            ProofError::DeviceIdMismatch => "device identity mismatch",
            ProofError::SignatureExpired => "device signature expired",
            ProofError::NonceRequired => "device nonce required",
            ProofError::NonceMismatch => "device nonce mismatch",
            ProofError::SignatureInvalid => "device signature invalid",
            ProofError::PublicKeyInvalid => "device public key invalid",
        }
    }
}

/// Decodes base64 permissively: base64url or standard alphabet, padded or not.
pub fn decode_base64_permissive(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() > MAX_KEY_INPUT {
        return None;
    }
    let mut t: String = s
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let t2 = t.trim_end_matches('=').len();
    t.truncate(t2);
    while !t.len().is_multiple_of(4) {
        t.push('=');
    }
    base64::engine::general_purpose::STANDARD.decode(t).ok()
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw 32 public-key bytes of `device.publicKey`: raw base64url (any padding or
/// alphabet) or a PEM SPKI key. `None` when it does not normalise.
pub fn raw_public_key(public_key: &str) -> Option<[u8; 32]> {
    if public_key.len() > MAX_KEY_INPUT {
        return None;
    }
    let pk = public_key.trim();
    let bytes = if pk.starts_with("-----BEGIN") {
        let body: String = pk
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        let der = decode_base64_permissive(&body)?;
        if der.len() != 44 || der[..12] != ED25519_SPKI_PREFIX {
            return None;
        }
        der[12..].to_vec()
    } else {
        decode_base64_permissive(pk)?
    };
    bytes.try_into().ok()
}

/// The normalised wire form of a public key: raw 32 bytes, base64url without padding.
pub fn normalize_public_key(public_key: &str) -> Option<String> {
    raw_public_key(public_key).map(|k| base64url(&k))
}

/// base64url without padding (device tokens, keys, signatures).
pub fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `deviceId`: lowercase hex SHA-256 of the raw public-key bytes.
pub fn device_id(raw_public_key: &[u8; 32]) -> String {
    let d = Sha256::digest(raw_public_key);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// True for a well-formed stored device id (`^[a-f0-9]{64}$`).
pub fn is_device_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `platform` / `deviceFamily` as signed: trimmed, ASCII A-Z folded to lowercase only.
pub fn normalize_meta(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// The v3 payload string.
pub fn payload_v3(f: &SignedFields<'_>) -> String {
    format!(
        "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce.trim(),
        normalize_meta(f.platform),
        normalize_meta(f.device_family)
    )
}

/// The v2 (legacy) payload string.
pub fn payload_v2(f: &SignedFields<'_>) -> String {
    format!(
        "v2|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce.trim()
    )
}

/// Verifies a device proof in the spec's order (§1.5). `expected_nonce` answers whether the
/// presented nonce is this connection's challenge (for a socket: equality with the nonce it
/// was sent; for gRPC: a live, unused challenge); it is called only after the earlier
/// checks passed. On success returns the normalised public key and the device id.
pub fn verify(
    proof: &DeviceProof,
    fields: &SignedFields<'_>,
    now_ms: i64,
    expected_nonce: &mut dyn FnMut(&str) -> bool,
) -> Result<(String, String), ProofError> {
    // 1. The derived id must equal the claimed one (an undecodable key derives nothing).
    let raw = raw_public_key(&proof.public_key);
    let derived = raw.as_ref().map(device_id);
    if derived.as_deref() != Some(proof.id.as_str()) {
        return Err(ProofError::DeviceIdMismatch);
    }
    // 2. Skew.
    // Checked: a hostile `signedAt` (i64::MIN, i64::MAX) must not overflow into a small skew.
    let skew = now_ms
        .checked_sub(proof.signed_at_ms)
        .map(i64::unsigned_abs);
    if skew.is_none_or(|s| s > SIGNATURE_SKEW_MS.unsigned_abs()) {
        return Err(ProofError::SignatureExpired);
    }
    // 3, 4. Nonce.
    let nonce = proof.nonce.trim();
    if nonce.is_empty() {
        return Err(ProofError::NonceRequired);
    }
    if !expected_nonce(nonce) {
        return Err(ProofError::NonceMismatch);
    }
    let raw = raw.ok_or(ProofError::PublicKeyInvalid)?;
    // 6 (checked where it matters): the bytes must be a usable Ed25519 point.
    let key = VerifyingKey::from_bytes(&raw).map_err(|_| ProofError::PublicKeyInvalid)?;
    // 5. v3, then v2.
    let sig = decode_base64_permissive(&proof.signature)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or(ProofError::SignatureInvalid)?;
    let ok = key.verify(payload_v3(fields).as_bytes(), &sig).is_ok()
        || key.verify(payload_v2(fields).as_bytes(), &sig).is_ok();
    if !ok {
        return Err(ProofError::SignatureInvalid);
    }
    Ok((base64url(&raw), proof.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn vector() -> (SigningKey, Vec<String>) {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        (SigningKey::from_bytes(&seed), vec!["operator.admin".into()])
    }

    /// The spec's test vector (§1.5), byte for byte.
    #[test]
    fn spec_test_vector() {
        let (sk, scopes) = vector();
        let pk = base64url(sk.verifying_key().as_bytes());
        assert_eq!(pk, "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ");
        let id = device_id(&raw_public_key(&pk).unwrap());
        assert_eq!(
            id,
            "65b60673d6ed884bf01c2c222d82ada0740f29ac3355d6a925c81f17f47a27b8"
        );
        let f = SignedFields {
            device_id: &id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1737264000000,
            token: "test-token",
            nonce: "3f2b6c1e-0000-4000-8000-000000000001",
            platform: "linux",
            device_family: "",
        };
        let v3 = payload_v3(&f);
        assert_eq!(
            v3,
            "v3|65b60673d6ed884bf01c2c222d82ada0740f29ac3355d6a925c81f17f47a27b8|cli|cli|operator|operator.admin|1737264000000|test-token|3f2b6c1e-0000-4000-8000-000000000001|linux|"
        );
        let sig3 = base64url(&sk.sign(v3.as_bytes()).to_bytes());
        assert_eq!(
            sig3,
            "nyT3aBfES6BEHb-jiUwXSOdHwaiKKq7g7rsHfxfNTTZwZOJ6G0DUTXBPoKVmVhFLCMLXKyr2KVMgy672Brr7Bw"
        );
        let v2 = payload_v2(&f);
        assert_eq!(
            v2,
            "v2|65b60673d6ed884bf01c2c222d82ada0740f29ac3355d6a925c81f17f47a27b8|cli|cli|operator|operator.admin|1737264000000|test-token|3f2b6c1e-0000-4000-8000-000000000001"
        );
        let sig2 = base64url(&sk.sign(v2.as_bytes()).to_bytes());
        assert_eq!(
            sig2,
            "JBXU9C2t6fGPM3Ctj7XreYxuisng9S8ZPbCm2IaUsM-CSi_copIdPP71HfEuxkXb2iRPEB9U6rTzeR6vp4lzDg"
        );

        // Both verify, with padded / standard-alphabet encodings too.
        for sig in [sig3.clone(), sig2.clone()] {
            let proof = DeviceProof {
                id: id.clone(),
                public_key: pk.clone(),
                signature: sig,
                signed_at_ms: 1737264000000,
                nonce: f.nonce.into(),
            };
            let r = verify(&proof, &f, 1737264000000 + 1000, &mut |n| n == f.nonce);
            assert_eq!(r, Ok((pk.clone(), id.clone())));
        }
        let std_sig = base64::engine::general_purpose::STANDARD
            .encode(decode_base64_permissive(&sig3).unwrap());
        let proof = DeviceProof {
            id: id.clone(),
            public_key: format!("{pk}="),
            signature: std_sig,
            signed_at_ms: 1737264000000,
            nonce: f.nonce.into(),
        };
        assert!(verify(&proof, &f, 1737264000000, &mut |_| true).is_ok());
    }

    #[test]
    fn verification_order() {
        let (sk, scopes) = vector();
        let pk = base64url(sk.verifying_key().as_bytes());
        let id = device_id(&raw_public_key(&pk).unwrap());
        let f = SignedFields {
            device_id: &id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1_000_000,
            token: "",
            nonce: "n1",
            platform: "Linux ",
            device_family: "",
        };
        let sig = base64url(&sk.sign(payload_v3(&f).as_bytes()).to_bytes());
        let good = DeviceProof {
            id: id.clone(),
            public_key: pk.clone(),
            signature: sig,
            signed_at_ms: 1_000_000,
            nonce: "n1".into(),
        };
        let now = 1_000_000;
        let mut yes = |_: &str| true;
        assert!(verify(&good, &f, now, &mut yes).is_ok());
        let bad = DeviceProof {
            id: "0".repeat(64),
            ..good.clone()
        };
        assert_eq!(
            verify(&bad, &f, now, &mut yes),
            Err(ProofError::DeviceIdMismatch)
        );
        assert_eq!(
            verify(&good, &f, now + 120_001, &mut yes),
            Err(ProofError::SignatureExpired)
        );
        assert!(verify(&good, &f, now - 120_000, &mut yes).is_ok());
        // Hostile clocks overflow nothing: they are simply expired.
        for signed_at_ms in [i64::MIN, i64::MAX] {
            let hostile = DeviceProof {
                signed_at_ms,
                ..good.clone()
            };
            assert_eq!(
                verify(&hostile, &f, now, &mut yes),
                Err(ProofError::SignatureExpired)
            );
        }
        let bad = DeviceProof {
            nonce: " ".into(),
            ..good.clone()
        };
        assert_eq!(
            verify(&bad, &f, now, &mut yes),
            Err(ProofError::NonceRequired)
        );
        assert_eq!(
            verify(&good, &f, now, &mut |n| n == "other"),
            Err(ProofError::NonceMismatch)
        );
        let other_scopes = vec!["operator.read".to_string()];
        let f2 = SignedFields {
            scopes: &other_scopes,
            ..f.clone()
        };
        assert_eq!(
            verify(&good, &f2, now, &mut yes),
            Err(ProofError::SignatureInvalid)
        );
        // PEM SPKI is accepted.
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(sk.verifying_key().as_bytes());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert_eq!(normalize_public_key(&pem).as_deref(), Some(pk.as_str()));
        assert!(!is_device_id("ABC"));
        assert!(is_device_id(&id));
    }
}
