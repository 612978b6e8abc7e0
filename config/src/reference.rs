//! The key reference, generated from the config types: the JSON Schema for editors
//! (`docs/config.schema.json`), the Markdown table of every key (`docs/config.md`), and the
//! unknown-key check the loader runs against the same schema.

use crate::Config;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The JSON Schema (draft 2020-12) of the config file.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut v = schemars::schema_for!(Config).to_value();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "$id".into(),
                Value::String("https://clawplane.dev/config.schema.json".into()),
            );
        }
        v
    })
}

/// The schema as checked-in text.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Where an openclaw.json key means the same as ours: (our key or `prefix.*`, OpenClaw's).
const OPENCLAW: &[(&str, &str)] = &[
    ("gateway.port", "same (`OPENCLAW_GATEWAY_PORT`)"),
    (
        "gateway.bind",
        "same (`loopback`, `lan`; not `tailnet`/`auto`)",
    ),
    ("gateway.mode", "same"),
    (
        "gateway.auth.mode",
        "same (`token`; the others are refused at start)",
    ),
    ("gateway.auth.token", "same (`OPENCLAW_GATEWAY_TOKEN`)"),
    ("gateway.auth.rateLimit.*", "`gateway.auth.rateLimit`"),
    ("gateway.trustedProxies", "same"),
    ("gateway.tls.*", "`gateway.tls`"),
    ("gateway.nodes.pairing.autoApproveLocal", "same"),
    ("hooks.*", "same"),
    ("session.dmScope", "same"),
    ("session.mainKey", "same"),
    ("session.identityLinks", "same"),
    ("agents.defaults.model", "same"),
    ("agents.defaults.heartbeat.every", "same"),
    ("agents.list[].*", "same"),
    ("models.*", "same"),
    ("channels.discord.dmPolicy", "same"),
    ("channels.discord.allowFrom", "same"),
    ("channels.discord.groupPolicy", "same"),
    ("channels.discord.groupAllowFrom", "same"),
    ("channels.telegram.dmPolicy", "same"),
    ("channels.telegram.allowFrom", "same"),
    ("channels.telegram.groupPolicy", "same"),
    ("channels.telegram.groupAllowFrom", "same"),
    ("channels.whatsapp.dmPolicy", "same"),
    ("channels.whatsapp.allowFrom", "same"),
    ("channels.whatsapp.groupPolicy", "same"),
    ("channels.whatsapp.groupAllowFrom", "same"),
    (
        "bindings*",
        "same (`route` bindings on channel, account, peer; `guildId`, `teamId`, `roles`, `acp` refused)",
    ),
];

fn openclaw(key: &str) -> &'static str {
    OPENCLAW
        .iter()
        .find(|(k, _)| match k.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == *k,
        })
        .map_or("—", |(_, v)| v)
}

/// A schema with its `$ref` resolved against the root's `$defs`.
fn resolve(s: &Value) -> &Value {
    let mut s = s;
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r
                .strip_prefix("#/$defs/")
                .and_then(|n| schema()["$defs"].get(n))
            {
                Some(target) => s = target,
                None => break,
            },
            None => break,
        }
    }
    s
}

/// The alternatives of a schema (`anyOf`/`oneOf`/`allOf` flattened; null dropped).
fn branches(s: &Value) -> Vec<&Value> {
    let s = resolve(s);
    let mut out = Vec::new();
    let mut any = false;
    for k in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            any = true;
            for b in list {
                out.extend(branches(b));
            }
        }
    }
    if !any && s.get("type").and_then(Value::as_str) != Some("null") {
        out.push(s);
    }
    out
}

/// What an object value may hold: its named properties, and the schema of any other key
/// (a map's values) if other keys are allowed.
type Shape<'a> = (Vec<(&'a String, &'a Value)>, Option<&'a Value>);

fn object_shape(s: &Value) -> Option<Shape<'_>> {
    let mut props = Vec::new();
    let mut extra = None;
    let mut found = false;
    for b in branches(s) {
        if let Some(p) = b.get("properties").and_then(Value::as_object) {
            found = true;
            props.extend(p.iter());
        }
        match b.get("additionalProperties") {
            Some(map_values @ Value::Object(_)) => {
                found = true;
                extra = Some(map_values);
            }
            Some(Value::Bool(true)) => return None,
            _ => {}
        }
        if b.as_bool() == Some(true) || b.as_object().is_some_and(Map::is_empty) {
            return None; // free-form
        }
    }
    found.then_some((props, extra))
}

fn items(s: &Value) -> Option<&Value> {
    branches(s).into_iter().find_map(|b| b.get("items"))
}

/// Keys of `value` the schema does not know, with the nearest known key when one is close.
pub fn unknown_keys(value: &Value) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    walk(value, schema(), "", &mut out);
    out
}

fn walk(value: &Value, s: &Value, path: &str, out: &mut Vec<(String, Option<String>)>) {
    match value {
        Value::Object(map) => {
            let Some((props, extra)) = object_shape(s) else {
                return;
            };
            for (k, v) in map {
                let key = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some((_, ps)) = props.iter().find(|(name, _)| *name == k) {
                    walk(v, ps, &key, out);
                } else if let Some(es) = extra {
                    walk(v, es, &key, out);
                } else {
                    let hint = nearest(k, props.iter().map(|(n, _)| n.as_str())).map(|n| {
                        if path.is_empty() {
                            n.to_string()
                        } else {
                            format!("{path}.{n}")
                        }
                    });
                    out.push((key, hint));
                }
            }
        }
        Value::Array(list) => {
            if let Some(is) = items(s) {
                for (i, v) in list.iter().enumerate() {
                    walk(v, is, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The known name closest to `name`: the same letters in another case or with `_`/`-`
/// (`dm_scope` → `dmScope`), else within a small edit distance.
fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let fold = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let folded = fold(name);
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = if fold(k) == folded {
            0
        } else {
            strsim::damerau_levenshtein(&folded, &fold(k))
        };
        if d <= (name.len() / 3).max(2) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// One row of the reference.
struct Row {
    key: String,
    ty: String,
    default: String,
    description: String,
}

fn type_name(s: &Value) -> String {
    let mut names: Vec<String> = Vec::new();
    for b in branches(s) {
        let name = match b.get("type") {
            Some(Value::String(t)) if t == "array" => format!(
                "array of {}",
                b.get("items")
                    .map(type_name)
                    .unwrap_or_else(|| "any".into())
            ),
            Some(Value::String(t)) if t == "object" && b.get("properties").is_none() => {
                match b.get("additionalProperties") {
                    Some(v @ Value::Object(_)) => format!("map of {}", type_name(v)),
                    _ => "object".into(),
                }
            }
            Some(Value::String(t)) => match b.get("format").and_then(Value::as_str) {
                Some(f) if t == "integer" => format!("integer ({f})"),
                _ => t.clone(),
            },
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect::<Vec<_>>()
                .join(" | "),
            _ if b.get("enum").is_some() => "enum".into(),
            _ => "any".into(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        "any".into()
    } else {
        names.join(" or ")
    }
}

fn rows(s: &Value, path: &str, default: Option<&Value>, out: &mut Vec<Row>) {
    let Some((props, _)) = object_shape(s) else {
        return;
    };
    let own_default = resolve(s).get("default").or(default);
    let mut props = props;
    props.sort_by(|a, b| a.0.cmp(b.0));
    for (name, ps) in props {
        if name == "$schema" && path.is_empty() {
            continue;
        }
        let key = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let d = ps
            .get("default")
            .or_else(|| own_default.and_then(|d| d.get(name.as_str())));
        let is_object = object_shape(ps).is_some_and(|(p, _)| !p.is_empty())
            && branches(ps)
                .iter()
                .all(|b| b.get("type").and_then(Value::as_str) == Some("object"));
        if is_object {
            rows(ps, &key, d, out);
            continue;
        }
        let description = ps
            .get("description")
            .or_else(|| resolve(ps).get("description"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('\n', " ");
        out.push(Row {
            key: key.clone(),
            ty: type_name(ps),
            default: match d {
                None | Some(Value::Null) => String::new(),
                Some(Value::Array(a)) if a.is_empty() => String::new(),
                Some(Value::Object(o)) if o.is_empty() => String::new(),
                Some(v) => format!("`{}`", serde_json::to_string(v).unwrap_or_default()),
            },
            description,
        });
        // Entries of lists and maps of objects have keys of their own.
        if let Some(is) =
            items(ps).filter(|is| object_shape(is).is_some_and(|(p, _)| !p.is_empty()))
        {
            rows(is, &format!("{key}[]"), None, out);
        }
        if let Some((_, Some(es))) = object_shape(ps)
            && object_shape(es).is_some_and(|(p, _)| !p.is_empty())
        {
            rows(es, &format!("{key}.<id>"), None, out);
        }
    }
}

/// `docs/config.md`: every key with its type, default, OpenClaw equivalent and meaning.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the config types (`config/src`); do not edit by hand: the test command\n\
         fails when it is stale, and `UPDATE_REFERENCE=1 cargo test -p clawplane-config` rewrites it. Editors can validate a config\n\
         file with [`config.schema.json`](config.schema.json) (`\"$schema\"` at the top of the file).\n\n\
         The file is JSON5 (`--config FILE`, `CLAWPLANE_CONFIG`, else `<data-dir>/clawplane.json5`\n\
         when it exists). `${VAR}` in a string value is replaced by the environment variable\n\
         (`[A-Z_][A-Z0-9_]*`; `$${` is a literal `${`; a missing variable stops the start, naming\n\
         the key). `CLAWPLANE_<SECTION>__<KEY>` overrides a key (`CLAWPLANE_SESSION__DM_SCOPE=main`);\n\
         `CLAWPLANE_GATEWAY_PORT`, `_BIND` and `_TOKEN` are short forms. Unknown keys and wrong types\n\
         stop the start with the key's path; `clawplane config validate [--config F]` checks a file\n\
         without starting. `<id>` stands for a map key, `[]` for every entry of a list.\n\n",
    );
    let mut all = Vec::new();
    rows(schema(), "", None, &mut all);
    let mut section = String::new();
    for r in all {
        let top = r.key.split(['.', '[']).next().unwrap_or("").to_string();
        if top != section {
            out.push_str(&format!(
                "\n## `{top}`\n\n| key | type | default | OpenClaw | meaning |\n|---|---|---|---|---|\n"
            ));
            section = top;
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            r.key,
            r.ty,
            r.default.replace('|', "\\|"),
            openclaw(&r.key),
            r.description.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_openclaw_row_names_a_key() {
        let md = markdown();
        for (k, _) in OPENCLAW {
            let probe = k.trim_end_matches('*');
            assert!(md.contains(&format!("| `{probe}")), "{k} names no key");
        }
    }

    #[test]
    fn reference_lists_nested_keys_with_defaults() {
        let md = markdown();
        for row in [
            "| `gateway.port` | integer (uint16) | `18789` |",
            "| `agents.defaults.heartbeat.every` | string | `\"30m\"` |",
            "| `hooks.mappings[].messageTemplate` |",
            "| `models.providers.<id>.apiKey` |",
            "| `channels.discord.maxMessagesPerHour` |",
        ] {
            assert!(md.contains(row), "missing {row}\n{md}");
        }
    }
}

/// `docs/config.md` and `docs/config.schema.json` are checked in; this test fails when they
/// differ from the types. `UPDATE_REFERENCE=1 cargo test -p clawplane-config` rewrites them.
#[cfg(test)]
mod fresh {
    #[test]
    fn checked_in_reference_is_current() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let files = [
            ("config.md", super::markdown()),
            ("config.schema.json", super::schema_text()),
        ];
        let update = std::env::var_os("UPDATE_REFERENCE").is_some();
        for (name, want) in files {
            let path = docs.join(name);
            if update {
                std::fs::write(&path, &want).expect("write the reference");
                continue;
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} is stale: run `UPDATE_REFERENCE=1 cargo test -p clawplane-config` and commit it",
                path.display()
            );
        }
    }
}
