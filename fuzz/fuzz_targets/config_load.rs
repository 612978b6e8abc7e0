//! The config loader on arbitrary JSON5 text answers Ok or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::env::temp_dir().join(format!(
        "clawplane-fuzz-config-{}.json5",
        std::process::id()
    ));
    std::fs::write(&path, text).unwrap();
    let env = |k: &str| (k == "SET").then(|| "value".to_string());
    let _ = clawplane_config::load(Some(&path), &env, &[]);
});
