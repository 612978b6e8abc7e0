//! Property tests for session keys: every function is total on arbitrary input and
//! canonicalisation is idempotent.

use super::*;
use proptest::prelude::*;

/// Arbitrary text plus the shapes the functions look for.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9:+@<>!_ .-]{0,40}",
        "(agent:|user:|dm:|channel:|room:|group:|<@|main|global|unknown| )[a-zA-Z0-9:+@<>!_. -]{0,20}",
    ]
}

fn channel() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("whatsapp".to_string()),
        Just("telegram".to_string()),
        Just("discord".to_string()),
        Just("slack".to_string()),
        Just(" WhatsApp ".to_string()),
        text(),
    ]
}

fn dm_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("main".to_string()),
        Just("per-peer".to_string()),
        Just("per-channel-peer".to_string()),
        Just("per-account-channel-peer".to_string()),
        text(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn normalize_agent_id_is_total_bounded_and_idempotent(id in text()) {
        let n = normalize_agent_id(&id);
        prop_assert!(!n.is_empty() && n.len() <= 64, "{n:?}");
        prop_assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'), "{n:?}");
        prop_assert_eq!(normalize_agent_id(&n), n.clone());
    }

    #[test]
    fn canonical_is_idempotent(key in text(), agent in text(), main in text()) {
        let agent = normalize_agent_id(&agent);
        let main = {
            let m = main.trim().to_string();
            if m.is_empty() { "main".to_string() } else { m }
        };
        let once = canonical(&key, &agent, &main);
        let twice = canonical(&once, &agent, &main);
        prop_assert_eq!(&twice, &once, "key {:?}", key);
        // A non-special key lands under an agent, and agent_of finds it.
        if once != "global" && once != "unknown" {
            prop_assert!(once.starts_with("agent:"), "{once:?}");
            prop_assert!(agent_of(&once).is_some());
        }
    }

    #[test]
    fn parse_peer_is_total_and_never_empty(ch in channel(), to in text()) {
        // `None` for no recipient or a prefix without an id (`user:`, `<@ >`); otherwise a
        // non-empty, trimmed id.
        match parse_peer(&ch, &to) {
            None => {}
            Some(Peer::Direct(id) | Peer::Group(id) | Peer::Channel(id)) => {
                prop_assert!(!to.trim().is_empty());
                prop_assert!(!id.is_empty() && id.trim() == id, "{id:?} from {to:?}");
            }
        }
        if to.trim().is_empty() {
            prop_assert!(parse_peer(&ch, &to).is_none());
        }
    }

    #[test]
    fn from_route_keys_are_canonical(
        agent in text(), main in text(), scope in dm_scope(), ch in channel(), to in text(), account in text(),
    ) {
        let agent = normalize_agent_id(&agent);
        let main = if main.trim().is_empty() { "main".to_string() } else { main.trim().to_string() };
        if let Some((key, why)) = from_route(&agent, &main, &scope, &ch, &to, &account) {
            prop_assert!(!why.is_empty());
            let prefix = format!("agent:{agent}:");
            prop_assert!(key.starts_with(&prefix), "{key:?}");
            prop_assert_eq!(agent_of(&key), Some(agent.as_str()));
            // Deriving is deterministic and the key survives canonicalisation unchanged.
            prop_assert_eq!(canonical(&key, "other", "main"), key.clone());
            let again = from_route(&agent, &main, &scope, &ch, &to, &account).map(|(k, _)| k);
            prop_assert_eq!(again, Some(key));
        } else {
            prop_assert!(parse_peer(&ch.trim().to_ascii_lowercase(), &to).is_none());
        }
    }
}
