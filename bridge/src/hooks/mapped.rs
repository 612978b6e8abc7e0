//! Mapped `POST <hooks>/<name>`: the first matching mapping, rendered per item (one
//! action, or a `forEach` fan-out dispatched in item order).

use super::{
    Hooks,
    compile::Action,
    render::Prepared,
    reply::{self, not_found, outcome_name, wake_mode_name, with_warnings},
    request::HookRequest,
};
use crate::{
    respond::{Answer, bad, json, reject},
    status::http_status,
};
use axum::{body::Body, http::StatusCode, response::Response};
use clawplane_proto::v1::{WakeMode, WakeOutcome};
use clawplane_util::template;
use serde_json::{Value as Json, json};

/// Items of one `forEach` fan-out.
pub const MAX_FAN_OUT: usize = 200;

impl Hooks {
    /// Mapped `POST <hooks>/<name>`: first matching mapping, rendered per item.
    pub(super) async fn mapped(&self, r: HookRequest) -> Answer<Response> {
        let Some(m) = self
            .c
            .mappings
            .iter()
            .find(|m| m.matches(&r.sub, &r.payload))
        else {
            return reject(not_found());
        };
        let mut warnings = r.warnings.clone();
        let items: Vec<&Json> = match &m.for_each {
            None => vec![&r.payload],
            Some(key) => match r.payload.get(key) {
                None | Some(Json::Null) => Vec::new(),
                Some(Json::Array(items)) => {
                    if items.len() > MAX_FAN_OUT {
                        warnings.push(format!(
                            "forEach {key:?} has {} items; only the first {MAX_FAN_OUT} were dispatched",
                            items.len()
                        ));
                    }
                    items.iter().take(MAX_FAN_OUT).collect()
                }
                Some(_) => {
                    return reject(bad(format!(
                        "hook mapping forEach key {key:?} is not an array"
                    )));
                }
            },
        };
        if items.is_empty() {
            return Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default());
        }
        let fan_out = m.for_each.is_some();
        let now = reply::now_iso();
        let path = r.sub.trim_matches('/');
        // Render and check everything first: bad input dispatches nothing.
        let mut prepared = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ctx = template::context(item, &r.headers, &r.query, path, &now);
            let key = r.idempotency_key.as_ref().map(|k| {
                if fan_out {
                    format!("{k}:{i}")
                } else {
                    k.clone()
                }
            });
            prepared.push(self.prepare(m, &ctx, key)?);
        }
        if !fan_out {
            return match prepared.pop() {
                Some(Prepared::Agent(req)) => {
                    let (body, more) = self.run(&r.caller, *req).await?;
                    warnings.extend(more);
                    Ok(json(StatusCode::OK, with_warnings(body, warnings)))
                }
                Some(Prepared::Wake(req)) => self.send_wake(&r.caller, req, warnings).await,
                None => reject(not_found()),
            };
        }
        // Fan-out, in item order (items of one session run in this order).
        let total = prepared.len();
        let (mut run_ids, mut errors, mut failures, mut first_error) =
            (Vec::new(), Vec::new(), 0usize, None);
        let mut outcome = None;
        let mut mode = WakeMode::Now;
        for p in prepared {
            let result = match p {
                Prepared::Agent(req) => {
                    self.s
                        .agent
                        .run(r.caller.request(*req))
                        .await
                        .map(|resp| {
                            let resp = resp.into_inner();
                            if let Some(why) = reply::no_route(resp.delivery.as_ref())
                                && warnings.len() < 5
                            {
                                warnings.push(format!(
                                    "run {}: deliver is true but the reply will not be delivered anywhere: {why}",
                                    resp.run_id
                                ));
                            }
                            run_ids.push(resp.run_id);
                        })
                }
                Prepared::Wake(req) => {
                    mode = WakeMode::try_from(req.mode).unwrap_or(WakeMode::Now);
                    self.s
                        .gateway
                        .wake(r.caller.request(req))
                        .await
                        .map(|w| {
                            let o = w.into_inner().outcome;
                            if outcome != Some(WakeOutcome::Queued as i32) {
                                outcome = Some(o);
                            }
                        })
                }
            };
            if let Err(s) = result {
                failures += 1;
                if errors.len() < 5 {
                    errors.push(s.message().to_string());
                }
                first_error.get_or_insert(s);
            }
        }
        if let Some(s) = first_error {
            return Ok(json(
                http_status(s.code()),
                json!({
                    "ok": false,
                    "error": format!(
                        "hook fan-out incomplete: {}/{total} dispatched, {failures} failed",
                        total - failures
                    ),
                    "runIds": run_ids,
                    "errors": errors,
                }),
            ));
        }
        let body = match m.action {
            Action::Agent => json!({
                "ok": true,
                "runId": run_ids.first(),
                "runIds": run_ids,
                "dispatched": total,
            }),
            Action::Wake => json!({
                "ok": true,
                "mode": wake_mode_name(mode),
                "eventOutcome": outcome_name(outcome.unwrap_or(WakeOutcome::Queued as i32)),
                "dispatched": total,
            }),
        };
        Ok(json(StatusCode::OK, with_warnings(body, warnings)))
    }
}
