//! Session keys: every function is total; `canonical` is idempotent; derived keys are
//! canonical.
#![no_main]

use clawplane_proto::keys::{agent_of, canonical, from_route, normalize_agent_id, parse_peer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1f}');
    let mut next = || parts.next().unwrap_or("").to_string();
    let (key, agent, main, scope, channel, to, account) =
        (next(), next(), next(), next(), next(), next(), next());
    let agent = normalize_agent_id(&agent);
    assert_eq!(normalize_agent_id(&agent), agent);
    let main = if main.trim().is_empty() {
        "main".to_string()
    } else {
        main.trim().to_string()
    };
    let once = canonical(&key, &agent, &main);
    assert_eq!(canonical(&once, &agent, &main), once);
    let _ = agent_of(&once);
    let _ = parse_peer(&channel, &to);
    if let Some((k, _)) = from_route(&agent, &main, &scope, &channel, &to, &account) {
        assert_eq!(canonical(&k, "x", "main"), k);
        assert_eq!(agent_of(&k), Some(agent.as_str()));
    }
});
