//! Standard Webhooks signing: `whsec_` secrets and the `v1,` signature of each attempt.

use base64::Engine as _;

/// The HMAC key of a `whsec_` secret: the base64-decoded bytes after the prefix.
pub(super) fn secret_key(secret: &str) -> std::result::Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| "must look like whsec_<base64>".to_string())?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the part after whsec_ is not base64".to_string())?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("must decode to 24..64 bytes, not {}", key.len()));
    }
    Ok(key)
}

/// A fresh `whsec_` secret of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// `webhook-signature` of one attempt: `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`.
pub fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> Option<String> {
    let key = secret_key(secret).ok()?;
    let mac = clawplane_util::crypto::hmac_sha256(
        &key,
        &[id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body],
    );
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_standard_webhooks() {
        // Vector from the standard-webhooks reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = sign(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
