//! Shutdown: the grace period bounds the drain, and a second signal exits at once.

use clawplane_proto::v1::{EventKind, RunState};
use std::time::{Duration, Instant};

use crate::harness::*;

#[tokio::test]
async fn second_signal_exits_at_once_and_the_run_is_retried_after_restart() {
    // A grace period far longer than the test: only the second signal can end the drain.
    let mut gw = Gateway::start_with("{ gateway: { shutdownGraceMs: 120000 } }").await;
    let a = gw.send("second", "/sleep 60000 long").await.run_id;
    let mut feed = gw.watch_after(0, run_filter(&a, &[EventKind::Run])).await;
    feed.collect_until(|e| is_run_event(e, &a, RunState::Running))
        .await;
    drop(feed);

    gw.sigterm();
    // Draining: readiness goes away while the run keeps running. Every process must have
    // taken the first signal before the second is sent (two signals that arrive before a
    // process handles the first are one).
    let deadline = Instant::now() + PATIENCE;
    for addr in gw.process_addrs() {
        loop {
            // 0: it no longer listens (nothing to drain there; it is stopping).
            let (code, _) = http1_get(addr, "/readyz").await;
            if code == 503 || code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{addr}/readyz never answered 503 while draining"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    gw.sigterm();
    let status = gw.wait_exit().await;
    assert!(
        !status.success(),
        "the second signal exits non-zero: {status:?}"
    );

    gw.start_again().await;
    let run = gw.get_run(&a).await;
    assert_eq!(run.attempt, 2, "the interrupted run is retried: {run:?}");
    let events = gw.events_until(gw.status().await.last_event_seq).await;
    assert!(
        run_states(&events, &a).contains(&RunState::Interrupted),
        "the feed records the interruption"
    );
}

/// A plain HTTP/1.1 GET on a gateway process; returns (status, body), status 0 when the
/// process no longer listens or hung up.
async fn http1_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    let mut buf = Vec::new();
    if s.write_all(req.as_bytes()).await.is_err() || s.read_to_end(&mut buf).await.is_err() {
        return (0, String::new());
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}
