//! Dispatch: due messages POSTed concurrently, retries on the schedule (Retry-After,
//! throttling floors, jitter), the attempt log, and disabling endpoints that keep failing.

use super::{
    DUTY, Egress,
    config::EndpointDef,
    duty,
    records::{AttemptRec, EndpointRec, MsgRec, Status},
    signing::sign,
    ssrf::resolve_target,
    webhook_event,
};
use crate::{
    error::Result,
    store::{Records, RecordsMut},
};
use clawplane_config::webhooks::EgressConfig;
use clawplane_proto::v1::WebhookEndpointChange;
use clawplane_util::{net::ip_literal, sync::lock, time::now_ms};
use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};
use tokio::sync::Semaphore;

/// Attempts kept per message (the count keeps going).
const ATTEMPTS_KEPT: usize = 50;
/// Bytes of an answer body kept in the attempt log.
const RESPONSE_KEPT: usize = 512;

impl Egress {
    /// Sends due messages, at most `webhooks.egress.concurrency` at once, until shutdown.
    pub(super) async fn dispatcher(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.cfg.concurrency));
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let now = now_ms();
            let (ready, next) = {
                let mut due = lock(&self.due);
                let inflight = lock(&self.inflight);
                let mut taken = Vec::new();
                let mut ready: Vec<String> = Vec::new();
                let mut seen: HashSet<&str> = HashSet::new();
                let mut next = None;
                for (at, id) in due.iter() {
                    if *at > now {
                        next = Some(*at);
                        break;
                    }
                    if !inflight.contains(id) {
                        taken.push((*at, id.clone()));
                        // A message can be due twice (redelivered while scheduled): one attempt.
                        if seen.insert(id.as_str()) {
                            ready.push(id.clone());
                        }
                    }
                }
                for t in &taken {
                    due.remove(t);
                }
                (ready, next)
            };
            for id in ready {
                let permit = tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                };
                lock(&self.inflight).insert(id.clone());
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.deliver(&id).await {
                        tracing::warn!(msg = %id, error = %e, "webhook delivery bookkeeping failed; retrying soon");
                        this.schedule(now_ms() + 5000, id.clone());
                    }
                    lock(&this.inflight).remove(&id);
                    drop(permit);
                    this.wake_dispatch.notify_one();
                });
            }
            let sleep = next
                .map(|at| Duration::from_millis((at - now_ms()).clamp(1, 60_000) as u64))
                .unwrap_or(Duration::from_secs(60));
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.wake_dispatch.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

/// What an attempt came to.
struct Outcome {
    status: u16,
    /// No answer within `timeoutSeconds`.
    timed_out: bool,
    error: String,
    latency_ms: u64,
    response: String,
    retry_after: Option<f64>,
}

impl Outcome {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

async fn attempt(cfg: &EgressConfig, def: &EndpointDef, msg: &MsgRec) -> Outcome {
    let started = Instant::now();
    let fail = |error: String| Outcome {
        status: 0,
        timed_out: false,
        error,
        latency_ms: started.elapsed().as_millis() as u64,
        response: String::new(),
        retry_after: None,
    };
    let url = match reqwest::Url::parse(&def.url) {
        Ok(u) => u,
        Err(e) => return fail(format!("bad URL: {e}")),
    };
    // Resolve once, check, and connect to exactly the checked addresses (no DNS rebinding).
    let addrs = match resolve_target(&url, cfg.allow_private_targets).await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let timeout = Duration::from_secs_f64(cfg.timeout_seconds);
    // No proxy from the environment: a proxy would resolve the host itself and reach
    // whatever it resolves to, past the address check above.
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("clawplane-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.host_str()
        && ip_literal(host).is_none()
    {
        builder = builder.resolve_to_addrs(host, &addrs);
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot build the HTTP client: {e}")),
    };
    let now_s = now_ms() / 1000;
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg.id)
        .header("webhook-timestamp", now_s.to_string());
    for (k, v) in &def.headers {
        req = req.header(k, v);
    }
    if let Some(sig) = def
        .secret
        .as_deref()
        .and_then(|s| sign(s, &msg.id, now_s, msg.body.as_bytes()))
    {
        req = req.header("webhook-signature", sig);
    }
    let mut resp = match req.body(msg.body.clone()).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Outcome {
                timed_out: true,
                ..fail(format!("timed out after {} s", cfg.timeout_seconds))
            };
        }
        Err(e) => return fail(format!("request failed: {}", error_chain(&e))),
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0);
    let mut body = Vec::new();
    while body.len() < RESPONSE_KEPT {
        match tokio::time::timeout(timeout, resp.chunk()).await {
            Ok(Ok(Some(c))) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(RESPONSE_KEPT);
    let ok = (200..300).contains(&status);
    Outcome {
        status,
        timed_out: false,
        error: if ok {
            String::new()
        } else {
            format!("HTTP {status}")
        },
        latency_ms: started.elapsed().as_millis() as u64,
        response: String::from_utf8_lossy(&body).into_owned(),
        retry_after,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The delay before the next attempt of a round that has made `round` attempts, or None
/// when the schedule is exhausted.
fn next_delay(cfg: &EgressConfig, round: u32, o: &Outcome) -> Option<Duration> {
    let base = *cfg.retry_schedule.get(round.checked_sub(1)? as usize)?;
    let throttled = matches!(o.status, 429 | 502 | 503 | 504);
    let mut secs = match o.retry_after {
        Some(ra) if throttled => ra.clamp(base, 2.0 * base),
        _ => base * rand::random_range(0.8..1.2),
    };
    if o.timed_out || o.status == 429 {
        secs = secs.max(cfg.throttle_min_seconds);
    }
    Some(Duration::from_secs_f64(secs))
}

impl Egress {
    /// One attempt of one message, then its durable bookkeeping.
    async fn deliver(&self, id: &str) -> Result<()> {
        let key = id.to_string();
        let (msg, ep) = self.store.read(|r| {
            let Some(m) = r.get::<MsgRec>(&key)? else {
                return Ok((None, None));
            };
            let ep = r.get::<EndpointRec>(&m.endpoint)?;
            Ok((Some(m), ep))
        })?;
        let Some(msg) = msg else { return Ok(()) };
        if msg.status != Status::Pending {
            return Ok(());
        }
        let Some(ep) = ep else {
            // The endpoint was deleted or left the config.
            let key = id.to_string();
            self.store
                .write(move |t| {
                    if let Some(mut m) = t.get::<MsgRec>(&key)? {
                        m.status = Status::Failed;
                        t.put(&m)?;
                    }
                    Ok(())
                })
                .await?;
            return Ok(());
        };
        if ep.disabled {
            return Ok(()); // rescheduled by EnableWebhookEndpoint
        }
        if !self.store.holds(&duty(&ep.id)) {
            // Another replica delivers this endpoint: ask it to send this one now.
            return self.store.signal(&format!("{DUTY}{id}"));
        }
        if msg.next_ms > now_ms() {
            self.schedule(msg.next_ms, msg.id.clone());
            return Ok(());
        }
        let outcome = attempt(&self.cfg, &ep.def, &msg).await;
        if outcome.ok() {
            tracing::debug!(msg = %msg.id, endpoint = %ep.id, status = outcome.status, "webhook delivered");
        } else {
            tracing::info!(msg = %msg.id, endpoint = %ep.id, error = %outcome.error, "webhook attempt failed");
        }
        let cfg = self.cfg.clone();
        let generation = msg.generation;
        let key = id.to_string();
        let ep_id = ep.id.clone();
        let (reschedule, finished) = self
            .store
            .write(move |t| {
                let Some(mut m) = t.get::<MsgRec>(&key)? else {
                    return Ok((None, false));
                };
                let now = now_ms();
                m.tries += 1;
                m.attempts.push(AttemptRec {
                    n: m.tries,
                    at_ms: now - outcome.latency_ms as i64,
                    status: outcome.status,
                    error: outcome.error.clone(),
                    latency_ms: outcome.latency_ms,
                    ok: outcome.ok(),
                    response: outcome.response.clone(),
                });
                if m.attempts.len() > ATTEMPTS_KEPT {
                    let cut = m.attempts.len() - ATTEMPTS_KEPT;
                    m.attempts.drain(..cut);
                }
                let current = m.generation == generation && m.status == Status::Pending;
                let mut reschedule = None;
                let mut finished = false;
                let gone = outcome.status == 410;
                if current {
                    m.round += 1;
                    if outcome.ok() {
                        m.status = Status::Delivered;
                        finished = true;
                    } else if gone {
                        m.status = Status::Failed;
                        finished = true;
                    } else {
                        match next_delay(&cfg, m.round, &outcome) {
                            Some(d) => {
                                m.next_ms = now + d.as_millis() as i64;
                                reschedule = Some(m.next_ms);
                            }
                            None => {
                                m.status = Status::Failed;
                                finished = true;
                            }
                        }
                    }
                }
                t.put(&m)?;
                if let Some(mut e) = t.get::<EndpointRec>(&ep_id)? {
                    let mut change = None;
                    if outcome.ok() {
                        if e.consecutive_failures > 0 {
                            change =
                                Some(("recovered", format!("{} delivered after failures", m.id)));
                        }
                        e.consecutive_failures = 0;
                        e.failing_since_ms = None;
                        e.last_error.clear();
                    } else {
                        e.consecutive_failures += 1;
                        let since = *e.failing_since_ms.get_or_insert(now);
                        e.last_error = outcome.error.clone();
                        let sustained = cfg.disable_after_seconds > 0
                            && now - since >= cfg.disable_after_seconds as i64 * 1000;
                        let in_a_row = cfg.disable_after_failures > 0
                            && e.consecutive_failures >= cfg.disable_after_failures;
                        if !e.disabled && (gone || sustained || in_a_row) {
                            let why = if gone {
                                "the endpoint answered 410 Gone".to_string()
                            } else {
                                format!(
                                    "{} attempts in a row failed since {}; last: {}",
                                    e.consecutive_failures,
                                    since / 1000,
                                    outcome.error
                                )
                            };
                            e.disabled = true;
                            e.disable_ms = now;
                            e.disabled_reason = why.clone();
                            change = Some(("disabled", why));
                        }
                    }
                    if let Some((ty, detail)) = change {
                        t.append_event(webhook_event(WebhookEndpointChange {
                            r#type: ty.into(),
                            endpoint_id: e.id.clone(),
                            url: e.def.url.clone(),
                            detail,
                        }))?;
                    }
                    t.put(&e)?;
                }
                Ok((reschedule, finished))
            })
            .await?;
        if let Some(at) = reschedule {
            self.schedule(at, id.to_string());
        }
        if finished {
            let n = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
            let max = self.cfg.max_attempt_log;
            if n > max + max / 10 + 1 {
                self.prune(max).await?;
            }
        }
        Ok(())
    }

    /// Deletes the oldest finished messages until `keep` remain.
    async fn prune(&self, keep: usize) -> Result<()> {
        let left = self
            .store
            .write(move |t| {
                let mut finished = Vec::new();
                t.each(|m: MsgRec| {
                    if m.status != Status::Pending {
                        finished.push(m.id)
                    }
                })?;
                let cut = finished.len().saturating_sub(keep);
                for id in &finished[..cut] {
                    t.delete::<MsgRec>(id)?;
                }
                Ok(finished.len() - cut)
            })
            .await?;
        self.finished.store(left, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_schedule_retry_after_and_throttle_floor() {
        let cfg = EgressConfig::default();
        let o = |status: u16, retry_after: Option<f64>, timed_out: bool| Outcome {
            status,
            timed_out,
            error: String::new(),
            latency_ms: 0,
            response: String::new(),
            retry_after,
        };
        let d = next_delay(&cfg, 1, &o(500, None, false)).unwrap();
        assert!(
            d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
            "{d:?}"
        );
        // Retry-After is clamped to [base, 2×base].
        let d = next_delay(&cfg, 2, &o(503, Some(100_000.0), false)).unwrap();
        assert_eq!(d, Duration::from_secs(600));
        let d = next_delay(&cfg, 2, &o(502, Some(1.0), false)).unwrap();
        assert_eq!(d, Duration::from_secs(300));
        // 429 and timeouts wait at least throttleMinSeconds.
        let d = next_delay(&cfg, 1, &o(429, Some(7.0), false)).unwrap();
        assert_eq!(d, Duration::from_secs(60));
        let d = next_delay(&cfg, 1, &o(0, None, true)).unwrap();
        assert_eq!(d, Duration::from_secs(60));
        // Seven delays: eight attempts, then FAILED.
        assert!(next_delay(&cfg, 7, &o(500, None, false)).is_some());
        assert!(next_delay(&cfg, 8, &o(500, None, false)).is_none());
    }
}
