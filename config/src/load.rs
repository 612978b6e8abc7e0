//! Reading a config: JSON5 text → `${VAR}` substitution in every string value → `CLAWPLANE_*`
//! overrides → unknown keys refused (checked against the generated schema, with a
//! did-you-mean) → typed deserialization (errors carry the key path) → data checks.

use crate::{Config, ConfigError, reference};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A loaded config and the file it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

/// Loads `path` (if any), substitutes `${VAR}` from `env`, applies `CLAWPLANE_*` overrides
/// from `env_vars`, refuses unknown keys and checks the data.
pub fn load(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    env_vars: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut value = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let mut value = json5::from_str::<Value>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            substitute_all(&mut value, env, &mut String::new())?;
            value
        }
        None => Value::Object(Map::new()),
    };
    if !value.is_object() {
        return Err(ConfigError::Invalid(
            "the top level must be an object".into(),
        ));
    }
    apply_env(&mut value, env_vars);
    Ok(Loaded {
        config: load_value(value)?,
        path: path.map(Path::to_path_buf),
    })
}

/// The snake_case spellings of channel keys that OpenClaw's "API & Webhooks" guide uses,
/// read as ours: (theirs, ours).
const CHANNEL_ALIASES: &[(&str, &str)] = &[
    ("max_messages_per_hour", "maxMessagesPerHour"),
    ("cooldown_seconds", "cooldownSeconds"),
];

/// Renames [`CHANNEL_ALIASES`] in every `channels.<id>` object; both spellings at once is
/// an error naming the key.
fn channel_aliases(value: &mut Value) -> Result<(), ConfigError> {
    let Some(channels) = value.get_mut("channels").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (id, channel) in channels.iter_mut() {
        let Some(obj) = channel.as_object_mut() else {
            continue;
        };
        for (theirs, ours) in CHANNEL_ALIASES {
            let Some(v) = obj.remove(*theirs) else {
                continue;
            };
            if obj.contains_key(*ours) {
                return Err(ConfigError::Invalid(format!(
                    "channels.{id} sets both {ours} and {theirs} (the same key): keep one"
                )));
            }
            obj.insert((*ours).to_string(), v);
        }
    }
    Ok(())
}

/// A config from an already substituted JSON value: unknown keys, types, data checks.
pub fn load_value(mut value: Value) -> Result<Config, ConfigError> {
    channel_aliases(&mut value)?;
    let unknown = reference::unknown_keys(&value);
    if !unknown.is_empty() {
        let keys: Vec<String> = unknown
            .into_iter()
            .map(|(key, hint)| match hint {
                Some(h) => format!("{key} (did you mean {h}?)"),
                None => key,
            })
            .collect();
        return Err(ConfigError::UnknownKeys { keys });
    }
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Type {
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            message: e.into_inner().to_string(),
        }
    })?;
    config.validate()?;
    Ok(config)
}

/// Substitutes `${VAR}` in every string value (not in keys); `path` is the key path so far.
fn substitute_all(
    value: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
    path: &mut String,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = substitute(s, env).map_err(|var| ConfigError::MissingVar {
                key: if path.is_empty() {
                    "(top level)".into()
                } else {
                    path.clone()
                },
                var,
            })?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute_all(item, env, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                substitute_all(v, env, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces `${NAME}` (`NAME` = `[A-Z_][A-Z0-9_]*`) with the environment value; `$${` is a
/// literal `${`; anything else is kept as written. Err names a missing variable.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let name = tail
            .strip_prefix("${")
            .and_then(|t| t.split_once('}'))
            .map(|(name, _)| name)
            .filter(|name| is_var_name(name));
        match name {
            Some(name) => {
                out.push_str(&env(name).ok_or_else(|| name.to_string())?);
                rest = &tail[name.len() + 3..];
            }
            None => {
                out.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// OpenClaw's variables that stand in for ours when ours are not set, so a migrating
/// user's environment keeps working: (theirs, ours).
pub const OPENCLAW_FALLBACKS: &[(&str, &str)] = &[
    ("OPENCLAW_GATEWAY_TOKEN", "CLAWPLANE_GATEWAY_TOKEN"),
    ("OPENCLAW_GATEWAY_PORT", "CLAWPLANE_GATEWAY_PORT"),
];

/// `CLAWPLANE_GATEWAY_PORT`, `_BIND`, `_TOKEN` are named aliases; any other
/// `CLAWPLANE_A__B_C` sets `a.bC` (sections split on `__`, words camel-cased). OpenClaw's
/// names ([`OPENCLAW_FALLBACKS`]) count when ours are absent.
fn apply_env(value: &mut Value, vars: &[(String, String)]) {
    let set = |name: &str| vars.iter().any(|(k, v)| k == name && !v.trim().is_empty());
    let fallbacks: Vec<(String, String)> = vars
        .iter()
        .filter_map(|(k, v)| {
            let (_, ours) = OPENCLAW_FALLBACKS.iter().find(|(theirs, _)| theirs == k)?;
            (!set(ours) && !v.trim().is_empty()).then(|| (ours.to_string(), v.clone()))
        })
        .collect();
    for (name, raw) in fallbacks.iter().chain(vars) {
        let Some(rest) = name.strip_prefix("CLAWPLANE_") else {
            continue;
        };
        let path: Vec<String> = match rest {
            "GATEWAY_PORT" => vec!["gateway".into(), "port".into()],
            "GATEWAY_BIND" => vec!["gateway".into(), "bind".into()],
            "GATEWAY_TOKEN" => vec!["gateway".into(), "auth".into(), "token".into()],
            _ if rest.contains("__") => rest.split("__").map(camel).collect(),
            _ => continue, // client-side or process variables (URL, TOKEN, DATA_DIR, LOG)
        };
        let parsed = serde_json::from_str::<Value>(raw)
            .ok()
            .filter(|v| !v.is_object() && !v.is_array())
            .unwrap_or_else(|| Value::String(raw.clone()));
        let mut cur = &mut *value;
        for (i, seg) in path.iter().enumerate() {
            let Some(obj) = cur.as_object_mut() else {
                break;
            };
            if i + 1 == path.len() {
                obj.insert(seg.clone(), parsed.clone());
                break;
            }
            cur = obj
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    for (i, w) in s.split('_').filter(|w| !w.is_empty()).enumerate() {
        let w = w.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&w);
        } else {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.push(f.to_ascii_uppercase());
                out.extend(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cp-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.json5");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn env(k: &str) -> Option<String> {
        match k {
            "TOK" => Some("se\"cr}et ${NOT_AGAIN}".into()),
            "PORT_ENV" => Some("7".into()),
            _ => None,
        }
    }

    #[test]
    fn substitution_is_per_string_value() {
        let file = write(
            "subst",
            r#"{
              // ${IN_A_COMMENT} is not looked at
              gateway: { auth: { token: "${TOK}" }, mode: "$${LITERAL} $5 ${lower} ${}" },
              hooks: { mappings: [ { messageTemplate: "a ${TOK} b" } ] },
            }"#,
        );
        let l = load(Some(&file), &env, &[]).unwrap();
        // A secret with quotes, braces and `${…}` is inserted verbatim, once.
        assert_eq!(
            l.config.gateway.auth.token.as_deref(),
            Some("se\"cr}et ${NOT_AGAIN}")
        );
        assert_eq!(
            l.config.gateway.mode.as_deref(),
            Some("${LITERAL} $5 ${lower} ${}")
        );
        assert_eq!(
            l.config.hooks.mappings[0].message_template.as_deref(),
            Some("a se\"cr}et ${NOT_AGAIN} b")
        );
        let file = write("missing", "{ hooks: { mappings: [ { to: 'x${NOPE}' } ] } }");
        let e = load(Some(&file), &env, &[]).unwrap_err().to_string();
        assert!(
            e.contains("hooks.mappings[0].to") && e.contains("${NOPE}"),
            "{e}"
        );
    }

    #[test]
    fn the_guides_snake_case_channel_limits_are_read() {
        let c = load_value(serde_json::json!({
            "channels": { "discord": { "token": "t", "max_messages_per_hour": 5, "cooldown_seconds": 9 } }
        }))
        .unwrap();
        let d = c.channels.discord.expect("discord");
        assert_eq!(
            (d.limits.max_messages_per_hour, d.limits.cooldown_seconds),
            (5, 9)
        );
        let e = load_value(serde_json::json!({
            "channels": { "slack": { "cooldown_seconds": 1, "cooldownSeconds": 2 } }
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("channels.slack") && e.contains("cooldown_seconds"),
            "{e}"
        );
    }

    #[test]
    fn openclaw_variables_stand_in_for_ours_only_when_ours_are_absent() {
        let file = write("openclaw-env", "{ gateway: { port: 1 } }");
        let vars = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let l = load(
            Some(&file),
            &env,
            &vars(&[
                ("OPENCLAW_GATEWAY_TOKEN", "theirs"),
                ("OPENCLAW_GATEWAY_PORT", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(l.config.gateway.auth.token.as_deref(), Some("theirs"));
        assert_eq!(l.config.gateway.port, 7);
        let l = load(
            Some(&file),
            &env,
            &vars(&[
                ("OPENCLAW_GATEWAY_TOKEN", "theirs"),
                ("CLAWPLANE_GATEWAY_TOKEN", "ours"),
                ("OPENCLAW_GATEWAY_PORT", ""),
            ]),
        )
        .unwrap();
        assert_eq!(l.config.gateway.auth.token.as_deref(), Some("ours"));
        assert_eq!(l.config.gateway.port, 1, "an empty variable is not set");
    }

    #[test]
    fn env_overrides_and_types() {
        let file = write("env", "{ gateway: { port: 1 } }");
        let vars = vec![
            ("CLAWPLANE_GATEWAY_PORT".to_string(), "4242".to_string()),
            (
                "CLAWPLANE_EVENTS__PROGRESS_INTERVAL_MS".to_string(),
                "10".to_string(),
            ),
        ];
        let l = load(Some(&file), &env, &vars).unwrap();
        assert_eq!(l.config.gateway.port, 4242);
        assert_eq!(l.config.events.progress_interval_ms, 10);
        let file = write(
            "type",
            "{ gateway: { nodes: { pairing: { pendingTtlMs: 'soon' } } } }",
        );
        let e = load(Some(&file), &env, &[]).unwrap_err().to_string();
        assert!(e.contains("gateway.nodes.pairing.pendingTtlMs"), "{e}");
        let file = write("type2", "{ agents: { list: [ { id: 'a', default: 3 } ] } }");
        let e = load(Some(&file), &env, &[]).unwrap_err().to_string();
        assert!(e.contains("agents.list[0].default"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        let e = load_value(serde_json::json!({"session": {"dm_scope": "main"}}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("session.dm_scope") && e.contains("session.dmScope"),
            "{e}"
        );
        let e = load_value(serde_json::json!({
            "channels": {"discord": {"tokn": "x"}},
            "hooks": {"mappings": [{"nope": 1}]},
            "gatway": {}
        }))
        .unwrap_err()
        .to_string();
        for k in [
            "channels.discord.tokn (did you mean channels.discord.token?)",
            "hooks.mappings[0].nope",
            "gatway (did you mean gateway?)",
        ] {
            assert!(e.contains(k), "{k} in {e}");
        }
        // Maps take any key; values are still checked.
        let e = load_value(serde_json::json!({
            "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:1/v1", "apiKye": "k"}}}
        }))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "models.providers.local.apiKye (did you mean models.providers.local.apiKey?)"
            ),
            "{e}"
        );
        // Free-form and union-typed values.
        load_value(serde_json::json!({
            "$schema": "./config.schema.json",
            "agents": {"defaults": {"model": {"primary": "builtin/echo", "fallbacks": []}}},
            "webhooks": {"outgoing": [{"event": "run.completed", "url": "https://x.example", "filter": {"agentId": "a"}}]},
            "session": {"identityLinks": {"ann": ["discord:1"]}},
        }))
        .unwrap();
    }
}
