//! Hook / ingress templates: compiling and rendering arbitrary text over an arbitrary JSON
//! body never panics.
#![no_main]

use clawplane_util::template::Templates;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (src, body) = text.split_once('\u{0}').unwrap_or((&text, "{}"));
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut t = Templates::default();
    if t.add("t", src).is_ok() {
        let mut headers = Map::new();
        headers.insert("x-event-type".into(), Value::String("push".into()));
        let _ = t.render("t", &body, &headers, "p", "2026-01-01T00:00:00.000Z");
    }
});
