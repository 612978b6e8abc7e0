//! Device identities for the pairing tests: an Ed25519 key as OpenClaw clients make it, and
//! the gRPC Challenge → ConnectDevice exchange.

use clawplane_proto::device_auth::{self, SignedFields};
use clawplane_proto::v1::{
    ChallengeRequest, ConnectDeviceRequest, ConnectDeviceResponse, DeviceProof,
};
use ed25519_dalek::{Signer as _, SigningKey};
use tonic::Status;

use super::{Gateway, Token};

/// A fresh Ed25519 device identity: the signing key, the raw public key as base64url, and the
/// device id (hex SHA-256 of the raw key), as OpenClaw clients derive them.
pub fn new_device_key() -> (ed25519_dalek::SigningKey, String, String) {
    use clawplane_proto::device_auth;
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let raw = *sk.verifying_key().as_bytes();
    (
        sk,
        device_auth::base64url(&raw),
        device_auth::device_id(&raw),
    )
}

/// A device: an Ed25519 key and its id.
pub struct Dev {
    sk: SigningKey,
    pub pk: String,
    pub id: String,
}

impl Dev {
    pub fn new() -> Self {
        let (sk, pk, id) = new_device_key();
        Dev { sk, pk, id }
    }

    /// A signed connect request over `nonce` at `signed_at` (v3 payload).
    pub fn request(
        &self,
        scopes: &[&str],
        token: &str,
        nonce: &str,
        signed_at: i64,
    ) -> ConnectDeviceRequest {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let f = SignedFields {
            device_id: &self.id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: signed_at,
            token,
            nonce,
            platform: "linux",
            device_family: "",
        };
        let sig = self.sk.sign(device_auth::payload_v3(&f).as_bytes());
        ConnectDeviceRequest {
            device: Some(DeviceProof {
                id: self.id.clone(),
                public_key: self.pk.clone(),
                signature: device_auth::base64url(&sig.to_bytes()),
                signed_at,
                nonce: nonce.into(),
            }),
            client_id: "cli".into(),
            client_mode: "cli".into(),
            role: "operator".into(),
            scopes,
            platform: "linux".into(),
            device_family: String::new(),
            display_name: "test device".into(),
            token: token.into(),
        }
    }
}

pub async fn challenge(gw: &Gateway) -> (String, i64) {
    challenge_as(gw, Token::none()).await
}

/// `DeviceService/Challenge` with `cred`'s metadata (e.g. a forwarded client address).
pub async fn challenge_as(gw: &Gateway, cred: Token) -> (String, i64) {
    let c = gw
        .devices_as(cred)
        .await
        .challenge(ChallengeRequest {})
        .await
        .expect("Challenge needs no credential")
        .into_inner();
    assert!(!c.nonce.is_empty());
    (c.nonce, c.ts)
}

/// Challenge → ConnectDevice, presenting (and signing) `token`.
pub async fn connect(
    gw: &Gateway,
    dev: &Dev,
    token: &str,
    scopes: &[&str],
) -> Result<ConnectDeviceResponse, Status> {
    let cred = if token.is_empty() {
        Token::none()
    } else {
        Token::bearer(token)
    };
    connect_as(gw, dev, cred, token, scopes).await
}

/// Challenge → ConnectDevice, both with `cred` (its credential and metadata), signing
/// `token`.
pub async fn connect_as(
    gw: &Gateway,
    dev: &Dev,
    cred: Token,
    token: &str,
    scopes: &[&str],
) -> Result<ConnectDeviceResponse, Status> {
    let (nonce, ts) = challenge_as(gw, cred.clone()).await;
    gw.devices_as(cred)
        .await
        .connect_device(dev.request(scopes, token, &nonce, ts))
        .await
        .map(|r| r.into_inner())
}
