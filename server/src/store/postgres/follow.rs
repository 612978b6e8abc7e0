//! Following the other replicas: a thread that publishes, in seq order, the events other
//! processes committed after this one's head, to its foreign hooks and its subscribers.
//! Every commit with events notifies `clawplane_feed`; a LISTEN connection wakes the thread
//! at once, and it also polls, so a lost notification (a reconnect) delays an event but
//! never drops it. The writer publishes the same way before each of its own commits, under
//! the same lock, so the two never interleave out of order.

use super::{Conn, FEED_CHANNEL, Rt, SIGNAL_CHANNEL, i64_of, se, u64_of};
use crate::error::Result;
use crate::store::Feed;
use futures::StreamExt as _;
use std::sync::{
    Arc, Weak,
    atomic::{AtomicBool, Ordering},
    mpsc,
};
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};

/// How long the follower sleeps without a notification.
const POLL: Duration = Duration::from_millis(250);
/// Events read per query.
const PAGE: i64 = 1000;

/// Starts the follower; it ends when the feed is dropped. Returns once this process
/// listens (so a signal sent after the gateway is ready reaches it), or has tried to.
pub(super) fn spawn(feed: &Arc<Feed>, rt: Arc<Rt>, url: String, origin: String) -> Result<()> {
    let origin: Arc<str> = origin.into();
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    let listening = Arc::new(AtomicBool::new(true));
    let (ready, listens) = mpsc::sync_channel::<()>(1);
    listen(
        &rt,
        &url,
        feed,
        &origin,
        wake.clone(),
        listening.clone(),
        Some(ready),
    );
    if listens.recv_timeout(Duration::from_secs(10)).is_err() {
        tracing::warn!("not listening for the other replicas yet; retrying in the background");
    }
    let feed = Arc::downgrade(feed);
    std::thread::Builder::new()
        .name("clawplane-pg-follow".into())
        .spawn(move || follow(feed, rt, url, origin, wake, woken, listening))
        .map_err(se)?;
    Ok(())
}

fn follow(
    feed: Weak<Feed>,
    rt: Arc<Rt>,
    url: String,
    origin: Arc<str>,
    wake: mpsc::SyncSender<()>,
    woken: mpsc::Receiver<()>,
    listening: Arc<AtomicBool>,
) {
    let mut conn: Option<Conn> = None;
    loop {
        let _ = woken.recv_timeout(POLL);
        let Some(feed) = feed.upgrade() else { return };
        if !listening.swap(true, Ordering::AcqRel) {
            listen(
                &rt,
                &url,
                &feed,
                &origin,
                wake.clone(),
                listening.clone(),
                None,
            );
        }
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = match Conn::connect(&rt, &url) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "the feed follower cannot reach PostgreSQL");
                    None
                }
            };
        }
        if let Some(c) = &conn
            && let Err(e) = catch_up(&feed, c)
        {
            tracing::warn!(error = %e, "the feed follower could not read the log");
        }
    }
}

/// Publishes every committed event after the feed's head.
fn catch_up(feed: &Feed, c: &Conn) -> Result<()> {
    let stats = |c: &Conn| -> Result<(u64, u64, u64)> {
        let r = c
            .row(
                "SELECT (SELECT v FROM meta WHERE k = 'last_seq'),
                        (SELECT v FROM meta WHERE k = 'sessions'),
                        (SELECT min(seq) FROM events)",
                &[],
            )?
            .ok_or_else(|| se("no meta row"))?;
        let head = u64_of(r.get::<_, Option<i64>>(0).unwrap_or(0));
        let sessions = u64_of(r.get::<_, Option<i64>>(1).unwrap_or(0));
        let oldest = r.get::<_, Option<i64>>(2).map_or(head + 1, u64_of);
        Ok((head, sessions, oldest))
    };
    let (head, sessions, oldest) = stats(c)?;
    if head <= feed.head.load(Ordering::Acquire) {
        return Ok(());
    }
    // The counts of `head` are stored before its events are published, and no event past
    // it is: whoever waits for the feed to reach a seq (`Store::catch_up`) then reads
    // counts at least as new (later commits come with the next round).
    feed.sessions.store(sessions, Ordering::Release);
    feed.oldest.store(oldest, Ordering::Release);
    let _publishing = feed.publishing();
    loop {
        let after = feed.head.load(Ordering::Acquire);
        let events = c
            .rows(
                "SELECT data FROM events WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2",
                &[&i64_of(after), &PAGE, &i64_of(head)],
            )?
            .iter()
            .map(|r| crate::store::codec::decode(&r.get::<_, Vec<u8>>(0)).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let n = events.len() as i64;
        feed.publish_foreign(events);
        if n < PAGE {
            break;
        }
    }
    Ok(())
}

/// A LISTEN connection that wakes the follower on each feed notification and hands
/// signals to the feed's signal hooks; `listening` goes false when it ends, so the
/// follower starts another.
fn listen(
    rt: &Rt,
    url: &str,
    feed: &Arc<Feed>,
    origin: &Arc<str>,
    wake: mpsc::SyncSender<()>,
    listening: Arc<AtomicBool>,
    ready: Option<mpsc::SyncSender<()>>,
) {
    let url = url.to_string();
    let origin = origin.clone();
    let feed = Arc::downgrade(feed);
    rt.handle().spawn(async move {
        let (client, mut connection) = match tokio_postgres::connect(&url, NoTls).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "feed LISTEN connection failed");
                listening.store(false, Ordering::Release);
                return;
            }
        };
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) if n.channel() == SIGNAL_CHANNEL => {
                        // `<sender's replica id> <message>`; this replica's own are skipped.
                        if let Some((from, message)) = n.payload().split_once(' ')
                            && from != &*origin
                            && let Some(feed) = feed.upgrade()
                        {
                            feed.signalled(message);
                        }
                    }
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = wake.try_send(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "feed LISTEN connection ended");
                        break;
                    }
                }
            }
        });
        if let Err(e) = client
            .batch_execute(&format!("LISTEN {FEED_CHANNEL}; LISTEN {SIGNAL_CHANNEL}"))
            .await
        {
            tracing::debug!(error = %e, "LISTEN failed");
        } else if let Some(ready) = ready {
            let _ = ready.try_send(());
        }
        let _ = driver.await;
        drop(client);
        listening.store(false, Ordering::Release);
    });
}
