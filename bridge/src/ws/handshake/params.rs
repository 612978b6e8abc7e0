//! The `connect` params, validated against OpenClaw's closed schema (spec §1.4): unknown
//! keys, client ids and modes are refused before any credential is looked at.

use serde_json::Value as Json;

const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];
const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];

/// The `connect` params this shim uses, validated against the closed schema (§1.4).
pub(crate) struct ConnectParams {
    pub min_protocol: u64,
    pub max_protocol: u64,
    pub role: String,
    pub scopes: Vec<String>,
    pub client_id: String,
    pub client_mode: String,
    pub platform: String,
    pub device_family: String,
    pub display_name: String,
    pub token: Option<String>,
    pub device_token: Option<String>,
    pub bootstrap_token: Option<String>,
    pub device: Option<clawplane_proto::v1::DeviceProof>,
}

impl ConnectParams {
    pub fn parse(p: &Json) -> Result<ConnectParams, String> {
        let obj = p.as_object().ok_or("params must be an object")?;
        const KEYS: &[&str] = &[
            "minProtocol",
            "maxProtocol",
            "client",
            "role",
            "scopes",
            "caps",
            "commands",
            "permissions",
            "pathEnv",
            "computerUse",
            "workerRuns",
            "modelCatalog",
            "auth",
            "device",
            "locale",
            "userAgent",
        ];
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("must NOT have additional properties ({k})"));
        }
        let proto = |k: &str| -> Result<u64, String> {
            obj.get(k)
                .and_then(Json::as_u64)
                .filter(|v| *v >= 1)
                .ok_or_else(|| format!("{k} must be an integer >= 1"))
        };
        let min_protocol = proto("minProtocol")?;
        let max_protocol = proto("maxProtocol")?;
        let client = obj
            .get("client")
            .and_then(Json::as_object)
            .ok_or("must have required property 'client'")?;
        let cs = |k: &str| client.get(k).and_then(Json::as_str);
        match cs("id") {
            Some(id) if CLIENT_IDS.contains(&id) => {}
            Some(id) => {
                return Err(format!(
                    "client.id must be equal to one of the allowed values (got {id:?})"
                ));
            }
            None => return Err("client must have required property 'id'".into()),
        }
        match cs("mode") {
            Some(m) if CLIENT_MODES.contains(&m) => {}
            Some(m) => {
                return Err(format!(
                    "client.mode must be equal to one of the allowed values (got {m:?})"
                ));
            }
            None => return Err("client must have required property 'mode'".into()),
        }
        for k in ["version", "platform"] {
            if cs(k).is_none_or(|v| v.is_empty()) {
                return Err(format!("client.{k} must be a non-empty string"));
            }
        }
        let role = match obj.get("role") {
            None | Some(Json::Null) => "operator".to_string(),
            Some(Json::String(r)) if ["operator", "node", "worker"].contains(&r.as_str()) => {
                r.clone()
            }
            Some(_) => return Err("invalid role".into()),
        };
        if let Some(s) = obj.get("scopes")
            && !s.as_array().is_some_and(|a| a.iter().all(Json::is_string))
        {
            return Err("scopes must be an array of strings".into());
        }
        let scopes: Vec<String> = obj
            .get("scopes")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Json::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut token = None;
        let mut device_token = None;
        let mut bootstrap_token = None;
        if let Some(a) = obj.get("auth") {
            let a = a.as_object().ok_or("auth must be an object")?;
            const AUTH_KEYS: &[&str] = &[
                "token",
                "bootstrapToken",
                "deviceToken",
                "password",
                "approvalRuntimeToken",
                "agentRuntimeIdentityToken",
            ];
            for (k, v) in a {
                if !AUTH_KEYS.contains(&k.as_str()) {
                    return Err(format!("auth must NOT have additional properties ({k})"));
                }
                if !v.is_string() {
                    return Err(format!("auth.{k} must be a string"));
                }
            }
            let s = |k: &str| {
                a.get(k)
                    .and_then(Json::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            token = s("token");
            device_token = s("deviceToken");
            bootstrap_token = s("bootstrapToken");
        }
        let mut device = None;
        if let Some(d) = obj.get("device") {
            let d = d.as_object().ok_or("device must be an object")?;
            for k in ["id", "publicKey", "signature", "nonce"] {
                if !d.get(k).is_some_and(Json::is_string) {
                    return Err(format!("device must have required property '{k}'"));
                }
            }
            let Some(signed_at) = d.get("signedAt").and_then(Json::as_u64) else {
                return Err("device must have required property 'signedAt' (integer >= 0)".into());
            };
            if let Some(k) = d.keys().find(|k| {
                !["id", "publicKey", "signature", "signedAt", "nonce"].contains(&k.as_str())
            }) {
                return Err(format!("device must NOT have additional properties ({k})"));
            }
            let ds = |k: &str| d.get(k).and_then(Json::as_str).unwrap_or("").to_string();
            device = Some(clawplane_proto::v1::DeviceProof {
                id: ds("id"),
                public_key: ds("publicKey"),
                signature: ds("signature"),
                signed_at: signed_at.min(i64::MAX as u64) as i64,
                nonce: ds("nonce").trim().to_string(),
            });
        }
        let cstr = |k: &str| {
            client
                .get(k)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        Ok(ConnectParams {
            min_protocol,
            max_protocol,
            role,
            scopes,
            client_id: cstr("id"),
            client_mode: cstr("mode"),
            platform: cstr("platform"),
            device_family: cstr("deviceFamily"),
            display_name: cstr("displayName"),
            token,
            device_token,
            bootstrap_token,
            device,
        })
    }
}
