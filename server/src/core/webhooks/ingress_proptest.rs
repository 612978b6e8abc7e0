//! Property tests for ingress signature verification (`X-Webhook-Secret`,
//! `X-Hub-Signature-256`, `Stripe-Signature`, Standard Webhooks): arbitrary headers and
//! bodies never panic, and only the right signature is accepted.

use super::*;
use proptest::prelude::*;

fn endpoint(scheme: Scheme, secret: &[u8]) -> Endpoint {
    Endpoint {
        path: "p".into(),
        scheme,
        secret: secret.to_vec(),
        tolerance: DEFAULT_TOLERANCE_SECONDS,
        session_key: None,
        agent_id: String::new(),
        deliver: false,
        channel: String::new(),
        to: String::new(),
    }
}

fn scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        Just(Scheme::Secret),
        Just(Scheme::Github),
        Just(Scheme::Stripe),
        Just(Scheme::StandardWebhooks),
    ]
}

/// Header values that look like (and are not) signatures.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "sha256=[0-9a-fA-F+-]{0,70}",
        "(t=[0-9-]{0,12},?|v1=[0-9a-f]{0,66},?|v0=[0-9a-f]{0,8},?| ,?|=,?)*",
        "(v1,[A-Za-z0-9+/=]{0,48} ?|v2,x ?| )*",
        "[0-9]{0,12}",
    ]
}

fn headers() -> impl Strategy<Value = HashMap<String, String>> {
    prop::collection::hash_map(
        prop_oneof![
            Just("x-webhook-secret".to_string()),
            Just("x-hub-signature-256".to_string()),
            Just("stripe-signature".to_string()),
            Just("webhook-id".to_string()),
            Just("webhook-timestamp".to_string()),
            Just("webhook-signature".to_string()),
            Just("idempotency-key".to_string()),
            Just("x-github-delivery".to_string()),
        ],
        header_value(),
        0..7,
    )
}

fn now() -> i64 {
    unix_now()
}

/// The headers a legitimate sender of `scheme` attaches to `body`.
fn signed(scheme: Scheme, secret: &[u8], body: &[u8], id: &str) -> HashMap<String, String> {
    let mut h = HashMap::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    match scheme {
        Scheme::Secret => {
            h.insert(
                "x-webhook-secret".into(),
                String::from_utf8(secret.to_vec()).unwrap(),
            );
        }
        Scheme::Github => {
            h.insert(
                "x-hub-signature-256".into(),
                format!("sha256={}", hex(hmac_sha256(secret, &[body]))),
            );
        }
        Scheme::Stripe => {
            let t = now().to_string();
            let mac = hmac_sha256(secret, &[t.as_bytes(), b".", body]);
            h.insert(
                "stripe-signature".into(),
                format!("t={t},v0=00,v1={},v1=beef", hex(mac)),
            );
        }
        Scheme::StandardWebhooks => {
            let ts = now().to_string();
            let mac = hmac_sha256(secret, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            h.insert("webhook-id".into(), id.into());
            h.insert("webhook-timestamp".into(), ts);
            h.insert(
                "webhook-signature".into(),
                format!("v1,AAAA v1,{} v2,zz", b64.encode(mac)),
            );
        }
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_headers_never_panic_and_are_refused(
        s in scheme(), secret in "[!-~]{8,40}", h in headers(), body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let ep = endpoint(s, secret.as_bytes());
        let r = verify(&ep, &h, &body);
        // Forging a MAC (or guessing the secret) at random does not happen.
        let presented_secret = h.get("x-webhook-secret").map(|v| v.trim() == secret).unwrap_or(false);
        if !(s == Scheme::Secret && presented_secret) {
            prop_assert!(r.is_err(), "{s:?} accepted {h:?}");
        }
        if let Err(e) = r {
            prop_assert!(matches!(e, Error::SignatureInvalid(_)), "{e:?}");
        }
    }

    #[test]
    fn the_right_signature_is_accepted_and_any_change_refused(
        s in scheme(),
        secret in "[!-~]{8,40}",
        body in prop::collection::vec(any::<u8>(), 0..512),
        id in "[A-Za-z0-9_-]{1,32}",
        flip in any::<prop::sample::Index>(),
        other in "[!-~]{8,40}",
    ) {
        let ep = endpoint(s, secret.as_bytes());
        let h = signed(s, secret.as_bytes(), &body, &id);
        prop_assert!(verify(&ep, &h, &body).is_ok(), "{s:?}: the right signature was refused");
        // The same delivery names the same dedupe id.
        prop_assert_eq!(verify(&ep, &h, &body).unwrap(), verify(&ep, &h, &body).unwrap());
        if s != Scheme::Secret {
            // A changed body is refused.
            let mut tampered = body.clone();
            if tampered.is_empty() {
                tampered.push(b'x');
            } else {
                let i = flip.index(tampered.len());
                tampered[i] ^= 0x01;
            }
            prop_assert!(verify(&ep, &h, &tampered).is_err(), "{s:?}: tampered body accepted");
        }
        // Signed with another secret: refused.
        if other != secret {
            let h2 = signed(s, other.as_bytes(), &body, &id);
            prop_assert!(verify(&ep, &h2, &body).is_err(), "{s:?}: wrong secret accepted");
        }
    }

    #[test]
    fn github_dedupes_on_the_signed_body_not_the_delivery_id(
        secret in "[!-~]{8,40}",
        body in prop::collection::vec(any::<u8>(), 0..256),
        other in prop::collection::vec(any::<u8>(), 0..256),
        ids in ("[a-f0-9-]{1,36}", "[a-f0-9-]{1,36}"),
    ) {
        let ep = endpoint(Scheme::Github, secret.as_bytes());
        let mut h = signed(Scheme::Github, secret.as_bytes(), &body, "");
        h.insert("x-github-delivery".into(), ids.0.clone());
        let original = verify(&ep, &h, &body).unwrap();
        // A replay under another (unsigned) delivery id, or none, or in upper-case hex, is
        // the same delivery.
        h.insert("x-github-delivery".into(), ids.1.clone());
        prop_assert_eq!(&verify(&ep, &h, &body).unwrap(), &original);
        h.remove("x-github-delivery");
        prop_assert_eq!(&verify(&ep, &h, &body).unwrap(), &original);
        let upper = h["x-hub-signature-256"].to_ascii_uppercase().replacen("SHA256=", "sha256=", 1);
        h.insert("x-hub-signature-256".into(), upper);
        prop_assert_eq!(&verify(&ep, &h, &body).unwrap(), &original);
        // Another body is another delivery.
        if other != body {
            let h2 = signed(Scheme::Github, secret.as_bytes(), &other, "");
            prop_assert_ne!(verify(&ep, &h2, &other).unwrap(), original);
        }
    }

    #[test]
    fn timestamps_outside_the_window_are_refused(
        secret in "[!-~]{8,40}", body in prop::collection::vec(any::<u8>(), 0..64), skew in 301i64..1_000_000_000, sign in any::<bool>(),
    ) {
        let t = if sign { now() + skew } else { now() - skew }.to_string();
        let ep = endpoint(Scheme::Stripe, secret.as_bytes());
        let mac = hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", &body]);
        let h = HashMap::from([("stripe-signature".to_string(), format!("t={t},v1={}", hex(mac)))]);
        prop_assert!(verify(&ep, &h, &body).is_err());
        let ep = endpoint(Scheme::StandardWebhooks, secret.as_bytes());
        let mac = hmac_sha256(secret.as_bytes(), &[b"msg_1.", t.as_bytes(), b".", &body]);
        let h = HashMap::from([
            ("webhook-id".to_string(), "msg_1".to_string()),
            ("webhook-timestamp".to_string(), t.clone()),
            ("webhook-signature".to_string(), format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac))),
        ]);
        prop_assert!(verify(&ep, &h, &body).is_err());
    }
}
