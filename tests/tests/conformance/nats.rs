//! The committed event log relayed to NATS JetStream (`events.nats.url`, `serve --events`):
//! the stream holds exactly the log, in seq order, without gap or duplicate — across a
//! SIGKILL of the gateway and a restart of nats-server.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use clawplane_proto::v1::Event;
use clawplane_testkit::{NatsServer, PgServer};
use futures::StreamExt as _;
use prost::Message as _;

use crate::harness::*;

/// Every event of the stream, in stream order.
async fn stream_events(url: &str) -> Vec<Event> {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = jetstream::new(client);
    let stream = js
        .get_stream("CLAWPLANE_EVENTS")
        .await
        .expect("the relay created the stream");
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("an ordered consumer");
    let total = stream.get_info().await.expect("stream info").state.messages;
    let mut out = Vec::new();
    let mut messages = consumer.messages().await.expect("messages");
    while (out.len() as u64) < total {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the stream delivers")
            .expect("a message")
            .expect("no error");
        out.push(Event::decode(m.payload.as_ref()).expect("an Event"));
    }
    out
}

/// Waits until the stream has caught up with the gateway's head; returns it.
pub(crate) async fn caught_up(gw: &Gateway, url: &str) -> Vec<Event> {
    let head = gw.status().await.last_event_seq;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = stream_events(url).await;
        if events.last().map(|e| e.seq) == Some(head) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the stream did not reach seq {head}: last {:?}",
            events.last().map(|e| e.seq)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_exactly_the_log(stream: &[Event], log: &[Event]) {
    let s: Vec<u64> = stream.iter().map(|e| e.seq).collect();
    let l: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(
        s, l,
        "the stream is the log: same seqs, same order, no gap, no duplicate"
    );
    for (a, b) in stream.iter().zip(log) {
        assert_eq!(a, b, "event {} differs", a.seq);
    }
}

#[tokio::test]
async fn the_stream_is_the_log_across_a_gateway_kill_and_a_nats_restart() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut gw =
        Gateway::start_with(&format!("{{ events: {{ nats: {{ url: '{url}' }} }} }}")).await;
    for i in 0..3 {
        let sent = gw.send("relay", &format!("message {i}")).await;
        gw.wait_run(&sent.run_id).await;
    }
    let stream = caught_up(&gw, &url).await;
    let log = gw.events_until(gw.status().await.last_event_seq).await;
    assert!(log.len() > 6, "runs and deltas were logged: {}", log.len());
    assert_exactly_the_log(&stream, &log);

    // SIGKILL, start again: the relay resumes after the stream's last event.
    gw.kill9().await;
    gw.start_again().await;
    let sent = gw.send("relay", "after the kill").await;
    gw.wait_run(&sent.run_id).await;
    let stream = caught_up(&gw, &url).await;
    let log = gw.events_until(gw.status().await.last_event_seq).await;
    assert_exactly_the_log(&stream, &log);

    // nats-server restarts (same files): the relay reconnects and carries on.
    nats.restart();
    let sent = gw.send("relay", "after the NATS restart").await;
    gw.wait_run(&sent.run_id).await;
    let stream = caught_up(&gw, &url).await;
    let log = gw.events_until(gw.status().await.last_event_seq).await;
    assert_exactly_the_log(&stream, &log);
}

#[tokio::test]
async fn a_bad_events_url_stops_the_start() {
    let stderr = GatewayBuilder::default()
        .arg("--events")
        .arg("http://127.0.0.1:4222")
        .refuses_to_start()
        .await;
    assert!(stderr.contains("events.nats.url"), "{stderr}");
    assert!(stderr.contains("nats://"), "{stderr}");
    let stderr =
        refuses_to_start("{ events: { nats: { url: 'nats://127.0.0.1:4222', stream: '' } } }")
            .await;
    assert!(stderr.contains("events.nats"), "{stderr}");
}

/// NATS down is not the gateway down: the store's log is the outbox, the relay retries.
#[tokio::test]
async fn an_unreachable_nats_does_not_stop_the_gateway() {
    let gw = Gateway::start_with("{ events: { nats: { url: 'nats://127.0.0.1:1' } } }").await;
    let sent = gw.send("relay", "nobody relays this yet").await;
    assert_eq!(
        gw.wait_run(&sent.run_id).await.state(),
        clawplane_proto::v1::RunState::Succeeded
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw.stderr().contains("event relay to NATS failed; retrying") {
        assert!(
            Instant::now() < deadline,
            "the relay says why: {}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replays read the stream first: with PostgreSQL stopped, a Watch from a cursor still gets
/// every event after it (only the stream can answer then); once the stream is purged, the
/// same replay comes from the log, event for event.
#[tokio::test]
async fn a_watch_replays_from_the_stream_and_from_the_log_once_the_stream_is_purged() {
    let pg = PgServer::start();
    let nats = NatsServer::start();
    let url = nats.url();
    let gw = Gateway::start_with(&format!(
        "{{ storage: {{ postgres: {{ url: '{}' }} }}, events: {{ nats: {{ url: '{url}' }} }} }}",
        pg.database()
    ))
    .await;
    let mut runs = Vec::new();
    for i in 0..12 {
        runs.push(gw.send(&format!("replay-{}", i % 3), "hello").await.run_id);
    }
    for id in &runs {
        gw.wait_run(id).await;
    }
    let stream = caught_up(&gw, &url).await;
    let head = stream.last().expect("events").seq;
    let want: Vec<Event> = stream.into_iter().filter(|e| e.seq > 5).collect();

    pg.stop();
    let mut feed = gw.watch_after(5, None).await;
    let from_stream = feed.collect_until(|e| e.seq >= head).await;
    drop(feed);
    pg.resume();
    assert_eq!(
        from_stream, want,
        "the replay with PostgreSQL down is the stream's"
    );

    let client = async_nats::connect(url.as_str()).await.expect("connect");
    jetstream::new(client)
        .get_stream("CLAWPLANE_EVENTS")
        .await
        .expect("the stream")
        .purge()
        .await
        .expect("purge");
    let mut feed = gw.watch_after(5, None).await;
    let from_log = feed.collect_until(|e| e.seq >= head).await;
    assert_eq!(from_log, want, "a purged stream: the log answers the same");
}
