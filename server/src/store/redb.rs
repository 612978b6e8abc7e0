//! The redb backend: table layout, the group-commit writer thread, read snapshots.

use super::codec::{decode, decode_run, encode_run, is_active, se, ts_ms};
use super::writer::{Engine, spawn_writer};
use super::{
    Backend, Completion, Encoded, Feed, IdemRecord, Job, Reader, Store, StoredDeviceToken,
    StoredRun, StoredWebhookKey, Txn,
};
use crate::error::Result;
use clawplane_proto::v1::{Device, Event, Message, PairingRequest, Run, Session, WebhookCall};
use clawplane_util::time::now_ms;
use prost::Message as _;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use std::{
    collections::VecDeque,
    path::Path,
    sync::{Arc, atomic::Ordering},
};

/// run id -> order (8 bytes BE) ++ Run
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// order -> run id
const RUN_ORDER: TableDefinition<u64, &str> = TableDefinition::new("run_order");
/// (session key, order) -> run id
const SESSION_RUNS: TableDefinition<(&str, u64), &str> = TableDefinition::new("session_runs");
/// order -> run id, for QUEUED and RUNNING runs
const ACTIVE: TableDefinition<u64, &str> = TableDefinition::new("active_runs");
/// idempotency key -> fingerprint (32 bytes) ++ run id
const IDEM: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// run id -> its idempotency record key (keyed runs only), so the record goes with the run
const RUN_KEYS: TableDefinition<&str, &str> = TableDefinition::new("run_keys");
/// session key -> Session
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (session id, index) -> Message
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
/// seq -> Event
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// session key -> JSON array of queued system-event texts
const SYSTEM_EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("system_events");
/// counters
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// gateway settings (instance id)
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
/// webhook key id -> secret digest (32 bytes) ++ WebhookKey
const WEBHOOK_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_keys");
/// call number -> WebhookCall (only the newest are kept)
const WEBHOOK_CALLS: TableDefinition<u64, &[u8]> = TableDefinition::new("webhook_calls");
/// device id -> Device
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// request id -> PairingRequest
const PAIRING_REQUESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("pairing_requests");
/// token digest (32 bytes) -> StoredDeviceToken (JSON)
const DEVICE_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("device_tokens");
/// (kind, key) -> encoded record: the typed records of `records.rs` (egress outbox,
/// channel send answers, sent-message receipts)
const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
/// (kind, key) -> last write (ms since the epoch), for timed record kinds
const RECORD_TIMES: TableDefinition<(&str, &str), u64> = TableDefinition::new("record_times");
/// (kind, last write ms, key): timed records oldest first, for retention
const RECORD_AGES: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("record_ages");

const META_RUN_ORDER: &str = "next_run_order";
const META_LAST_SEQ: &str = "last_seq";
const META_SESSIONS: &str = "session_count";
const META_WEBHOOK_CALL: &str = "next_webhook_call";

struct RedbBackend {
    db: Arc<Database>,
}

/// Opens (or creates) `<dir>/clawplane.redb`, starts the writer thread, and returns the
/// store. `retention` bounds the number of events kept.
pub fn open(dir: &Path, retention: u64, live_capacity: usize) -> Result<Store> {
    std::fs::create_dir_all(dir).map_err(|e| se(format!("{}: {e}", dir.display())))?;
    let db = Database::create(dir.join("clawplane.redb")).map_err(se)?;
    let (head, oldest, sessions) = {
        let txn = db.begin_write().map_err(se)?;
        let (head, oldest, sessions) = {
            let meta = txn.open_table(META).map_err(se)?;
            let events = txn.open_table(EVENTS).map_err(se)?;
            for t in [
                RUNS,
                IDEM,
                SESSIONS,
                SYSTEM_EVENTS,
                WEBHOOK_KEYS,
                DEVICES,
                PAIRING_REQUESTS,
            ] {
                txn.open_table(t).map_err(se)?;
            }
            txn.open_table(RUN_ORDER).map_err(se)?;
            txn.open_table(RUN_KEYS).map_err(se)?;
            txn.open_table(ACTIVE).map_err(se)?;
            txn.open_table(SESSION_RUNS).map_err(se)?;
            txn.open_table(MESSAGES).map_err(se)?;
            txn.open_table(SETTINGS).map_err(se)?;
            txn.open_table(WEBHOOK_CALLS).map_err(se)?;
            txn.open_table(DEVICE_TOKENS).map_err(se)?;
            txn.open_table(RECORDS).map_err(se)?;
            txn.open_table(RECORD_TIMES).map_err(se)?;
            txn.open_table(RECORD_AGES).map_err(se)?;
            let head = meta
                .get(META_LAST_SEQ)
                .map_err(se)?
                .map(|v| v.value())
                .unwrap_or(0);
            let oldest = events
                .first()
                .map_err(se)?
                .map(|(k, _)| k.value())
                .unwrap_or(head + 1);
            let sessions = meta
                .get(META_SESSIONS)
                .map_err(se)?
                .map(|v| v.value())
                .unwrap_or(0);
            (head, oldest, sessions)
        };
        txn.commit().map_err(se)?;
        (head, oldest, sessions)
    };
    let db = Arc::new(db);
    let feed = Arc::new(Feed::new(head, oldest, sessions, live_capacity));
    let engine = RedbEngine {
        db: db.clone(),
        retention,
    };
    spawn_writer(engine, feed, Arc::new(RedbBackend { db }))
}

struct RedbEngine {
    db: Arc<Database>,
    retention: u64,
}

impl Engine for RedbEngine {
    fn commit_batch(
        &mut self,
        feed: &Feed,
        batch: &mut VecDeque<Job>,
        completions: &mut Vec<Completion>,
        // One process per redb file: nobody else commits.
        _foreign: &mut Vec<Arc<Event>>,
        published: &mut Vec<Arc<Event>>,
    ) -> Result<(u64, u64, u64)> {
        commit_batch(
            &self.db,
            feed,
            batch,
            self.retention,
            completions,
            published,
        )
    }
}

fn commit_batch(
    db: &Database,
    feed: &Feed,
    batch: &mut VecDeque<Job>,
    retention: u64,
    completions: &mut Vec<Completion>,
    published: &mut Vec<Arc<Event>>,
) -> Result<(u64, u64, u64)> {
    let mut txn = db.begin_write().map_err(se)?;
    txn.set_durability(Durability::Immediate).map_err(se)?;
    let (head, oldest, sessions) = {
        let mut w = WTxn::open(&txn, feed.head.load(Ordering::Acquire))?;
        while let Some(job) = batch.pop_front() {
            completions.push(job(&mut w));
        }
        let head = w.last_seq;
        w.meta.insert(META_LAST_SEQ, head).map_err(se)?;
        let mut oldest = feed.oldest.load(Ordering::Acquire).min(head + 1);
        if oldest == 0 {
            oldest = 1;
        }
        if retention > 0 && head >= oldest && head - oldest + 1 > retention {
            let new_oldest = head + 1 - retention;
            w.events
                .retain_in(oldest..new_oldest, |_, _| false)
                .map_err(se)?;
            oldest = new_oldest;
        }
        if w.events.len().map_err(se)? == 0 {
            oldest = head + 1;
        }
        published.append(&mut w.new_events);
        (head, oldest, w.session_count()?)
    };
    txn.commit().map_err(se)?;
    Ok((head, oldest, sessions))
}

struct WTxn<'t> {
    runs: redb::Table<'t, &'static str, &'static [u8]>,
    run_order: redb::Table<'t, u64, &'static str>,
    session_runs: redb::Table<'t, (&'static str, u64), &'static str>,
    active: redb::Table<'t, u64, &'static str>,
    idem: redb::Table<'t, &'static str, &'static [u8]>,
    run_keys: redb::Table<'t, &'static str, &'static str>,
    sessions: redb::Table<'t, &'static str, &'static [u8]>,
    messages: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    events: redb::Table<'t, u64, &'static [u8]>,
    system_events: redb::Table<'t, &'static str, &'static [u8]>,
    meta: redb::Table<'t, &'static str, u64>,
    settings: redb::Table<'t, &'static str, &'static str>,
    webhook_keys: redb::Table<'t, &'static str, &'static [u8]>,
    webhook_calls: redb::Table<'t, u64, &'static [u8]>,
    devices: redb::Table<'t, &'static str, &'static [u8]>,
    pairing_requests: redb::Table<'t, &'static str, &'static [u8]>,
    device_tokens: redb::Table<'t, &'static [u8], &'static [u8]>,
    records: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    record_times: redb::Table<'t, (&'static str, &'static str), u64>,
    record_ages: redb::Table<'t, (&'static str, u64, &'static str), ()>,
    last_seq: u64,
    new_events: Vec<Arc<Event>>,
}

impl<'t> WTxn<'t> {
    fn t_runs(&self) -> Result<&redb::Table<'t, &'static str, &'static [u8]>> {
        Ok(&self.runs)
    }
    fn t_run_order(&self) -> Result<&redb::Table<'t, u64, &'static str>> {
        Ok(&self.run_order)
    }
    fn t_session_runs(&self) -> Result<&redb::Table<'t, (&'static str, u64), &'static str>> {
        Ok(&self.session_runs)
    }
    fn t_active(&self) -> Result<&redb::Table<'t, u64, &'static str>> {
        Ok(&self.active)
    }
    fn t_idem(&self) -> Result<&redb::Table<'t, &'static str, &'static [u8]>> {
        Ok(&self.idem)
    }
    fn t_sessions(&self) -> Result<&redb::Table<'t, &'static str, &'static [u8]>> {
        Ok(&self.sessions)
    }
    fn t_messages(&self) -> Result<&redb::Table<'t, (&'static str, u64), &'static [u8]>> {
        Ok(&self.messages)
    }
    fn t_events(&self) -> Result<&redb::Table<'t, u64, &'static [u8]>> {
        Ok(&self.events)
    }
    fn t_system_events(&self) -> Result<&redb::Table<'t, &'static str, &'static [u8]>> {
        Ok(&self.system_events)
    }
    fn t_meta(&self) -> Result<&redb::Table<'t, &'static str, u64>> {
        Ok(&self.meta)
    }
    fn t_settings(&self) -> Result<&redb::Table<'t, &'static str, &'static str>> {
        Ok(&self.settings)
    }
    fn t_webhook_keys(&self) -> Result<&redb::Table<'t, &'static str, &'static [u8]>> {
        Ok(&self.webhook_keys)
    }
    fn t_webhook_calls(&self) -> Result<&redb::Table<'t, u64, &'static [u8]>> {
        Ok(&self.webhook_calls)
    }
    fn t_devices(&self) -> Result<&redb::Table<'t, &'static str, &'static [u8]>> {
        Ok(&self.devices)
    }
    fn t_pairing_requests(&self) -> Result<&redb::Table<'t, &'static str, &'static [u8]>> {
        Ok(&self.pairing_requests)
    }
    fn t_device_tokens(&self) -> Result<&redb::Table<'t, &'static [u8], &'static [u8]>> {
        Ok(&self.device_tokens)
    }
    fn t_records(&self) -> Result<&redb::Table<'t, (&'static str, &'static str), &'static [u8]>> {
        Ok(&self.records)
    }
    fn open(txn: &'t redb::WriteTransaction, last_seq: u64) -> Result<Self> {
        Ok(WTxn {
            runs: txn.open_table(RUNS).map_err(se)?,
            run_order: txn.open_table(RUN_ORDER).map_err(se)?,
            session_runs: txn.open_table(SESSION_RUNS).map_err(se)?,
            active: txn.open_table(ACTIVE).map_err(se)?,
            idem: txn.open_table(IDEM).map_err(se)?,
            run_keys: txn.open_table(RUN_KEYS).map_err(se)?,
            sessions: txn.open_table(SESSIONS).map_err(se)?,
            messages: txn.open_table(MESSAGES).map_err(se)?,
            events: txn.open_table(EVENTS).map_err(se)?,
            system_events: txn.open_table(SYSTEM_EVENTS).map_err(se)?,
            meta: txn.open_table(META).map_err(se)?,
            settings: txn.open_table(SETTINGS).map_err(se)?,
            webhook_keys: txn.open_table(WEBHOOK_KEYS).map_err(se)?,
            webhook_calls: txn.open_table(WEBHOOK_CALLS).map_err(se)?,
            devices: txn.open_table(DEVICES).map_err(se)?,
            pairing_requests: txn.open_table(PAIRING_REQUESTS).map_err(se)?,
            device_tokens: txn.open_table(DEVICE_TOKENS).map_err(se)?,
            records: txn.open_table(RECORDS).map_err(se)?,
            record_times: txn.open_table(RECORD_TIMES).map_err(se)?,
            record_ages: txn.open_table(RECORD_AGES).map_err(se)?,
            last_seq,
            new_events: Vec::new(),
        })
    }
}

/// A read snapshot. Tables open on first use: most reads touch one or two of them.
struct RSnap {
    txn: redb::ReadTransaction,
}

impl RSnap {
    fn t_runs(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.txn.open_table(RUNS).map_err(se)
    }
    fn t_run_order(&self) -> Result<redb::ReadOnlyTable<u64, &'static str>> {
        self.txn.open_table(RUN_ORDER).map_err(se)
    }
    fn t_session_runs(&self) -> Result<redb::ReadOnlyTable<(&'static str, u64), &'static str>> {
        self.txn.open_table(SESSION_RUNS).map_err(se)
    }
    fn t_active(&self) -> Result<redb::ReadOnlyTable<u64, &'static str>> {
        self.txn.open_table(ACTIVE).map_err(se)
    }
    fn t_idem(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.txn.open_table(IDEM).map_err(se)
    }
    fn t_sessions(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.txn.open_table(SESSIONS).map_err(se)
    }
    fn t_messages(&self) -> Result<redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>> {
        self.txn.open_table(MESSAGES).map_err(se)
    }
    fn t_events(&self) -> Result<redb::ReadOnlyTable<u64, &'static [u8]>> {
        self.txn.open_table(EVENTS).map_err(se)
    }
    fn t_system_events(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.txn.open_table(SYSTEM_EVENTS).map_err(se)
    }
    fn t_meta(&self) -> Result<redb::ReadOnlyTable<&'static str, u64>> {
        self.txn.open_table(META).map_err(se)
    }
    fn t_settings(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static str>> {
        self.txn.open_table(SETTINGS).map_err(se)
    }
    fn t_webhook_keys(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.txn.open_table(WEBHOOK_KEYS).map_err(se)
    }
    fn t_webhook_calls(&self) -> Result<redb::ReadOnlyTable<u64, &'static [u8]>> {
        self.txn.open_table(WEBHOOK_CALLS).map_err(se)
    }
    fn t_devices(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.txn.open_table(DEVICES).map_err(se)
    }
    fn t_pairing_requests(&self) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>> {
        self.txn.open_table(PAIRING_REQUESTS).map_err(se)
    }
    fn t_device_tokens(&self) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>> {
        self.txn.open_table(DEVICE_TOKENS).map_err(se)
    }
    fn t_records(
        &self,
    ) -> Result<redb::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>> {
        self.txn.open_table(RECORDS).map_err(se)
    }
}

impl Backend for RedbBackend {
    fn snapshot(&self) -> Result<Box<dyn Reader + '_>> {
        let txn = self.db.begin_read().map_err(se)?;
        Ok(Box::new(RSnap { txn }))
    }
}

/// One Reader implementation for both the write transaction and read snapshots.
macro_rules! impl_reader {
    ($t:ty) => {
        impl Reader for $t {
            fn raw_get(&self, kind: &str, key: &str) -> Result<Option<Encoded>> {
                Ok(self
                    .t_records()?
                    .get((kind, key))
                    .map_err(se)?
                    .map(|v| Encoded(v.value().to_vec())))
            }
            fn raw_scan(
                &self,
                kind: &str,
                after: &str,
                limit: usize,
            ) -> Result<Vec<(String, Encoded)>> {
                let mut out = Vec::new();
                let range = self.t_records()?.range((kind, after)..).map_err(se)?;
                for item in range {
                    let (k, v) = item.map_err(se)?;
                    let (k_kind, k_key) = k.value();
                    if k_kind != kind || out.len() >= limit {
                        break;
                    }
                    if k_key == after && !after.is_empty() {
                        continue;
                    }
                    out.push((k_key.to_string(), Encoded(v.value().to_vec())));
                }
                Ok(out)
            }
            fn run(&self, run_id: &str) -> Result<Option<StoredRun>> {
                match self.t_runs()?.get(run_id).map_err(se)? {
                    Some(v) => Ok(Some(decode_run(v.value())?)),
                    None => Ok(None),
                }
            }
            fn session(&self, key: &str) -> Result<Option<Session>> {
                match self.t_sessions()?.get(key).map_err(se)? {
                    Some(v) => Ok(Some(decode(v.value())?)),
                    None => Ok(None),
                }
            }
            fn idempotency(&self, key: &str) -> Result<Option<IdemRecord>> {
                let Some(v) = self.t_idem()?.get(key).map_err(se)? else {
                    return Ok(None);
                };
                let b = v.value();
                if b.len() < 32 {
                    return Err(se("corrupt idempotency record"));
                }
                let mut fingerprint = [0u8; 32];
                fingerprint.copy_from_slice(&b[..32]);
                Ok(Some(IdemRecord {
                    fingerprint,
                    run_id: String::from_utf8_lossy(&b[32..]).into_owned(),
                }))
            }
            fn system_events(&self, session_key: &str) -> Result<Vec<String>> {
                match self.t_system_events()?.get(session_key).map_err(se)? {
                    Some(v) => serde_json::from_slice(v.value()).map_err(se),
                    None => Ok(Vec::new()),
                }
            }
            fn messages(&self, session_id: &str, after: u64, limit: usize) -> Result<Vec<Message>> {
                let mut out = Vec::new();
                for item in self
                    .t_messages()?
                    .range((session_id, after.saturating_add(1))..=(session_id, u64::MAX))
                    .map_err(se)?
                {
                    if out.len() >= limit {
                        break;
                    }
                    let (_, v) = item.map_err(se)?;
                    out.push(decode(v.value())?);
                }
                Ok(out)
            }
            fn last_message(&self, session_id: &str) -> Result<Option<Message>> {
                let mut range = self
                    .t_messages()?
                    .range((session_id, 0u64)..=(session_id, u64::MAX))
                    .map_err(se)?;
                match range.next_back() {
                    Some(item) => Ok(Some(decode(item.map_err(se)?.1.value())?)),
                    None => Ok(None),
                }
            }
            fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
                let mut out = Vec::new();
                for item in self
                    .t_events()?
                    .range(after.saturating_add(1)..)
                    .map_err(se)?
                {
                    if out.len() >= limit {
                        break;
                    }
                    out.push(decode(item.map_err(se)?.1.value())?);
                }
                Ok(out)
            }
            fn session_count(&self) -> Result<u64> {
                Ok(self
                    .t_meta()?
                    .get(META_SESSIONS)
                    .map_err(se)?
                    .map(|v| v.value())
                    .unwrap_or(0))
            }
            fn sessions(&self) -> Result<Vec<Session>> {
                let mut out = Vec::new();
                for item in self.t_sessions()?.iter().map_err(se)? {
                    out.push(decode(item.map_err(se)?.1.value())?);
                }
                Ok(out)
            }
            fn runs_desc(
                &self,
                session_key: Option<&str>,
                before_order: u64,
                limit: usize,
                keep: &mut dyn FnMut(&Run) -> bool,
            ) -> Result<Vec<StoredRun>> {
                let mut out = Vec::new();
                let mut push = |id: &str, out: &mut Vec<StoredRun>| -> Result<bool> {
                    if let Some(r) = self.run(id)? {
                        if keep(&r.run) {
                            out.push(r);
                        }
                    }
                    Ok(out.len() >= limit)
                };
                match session_key {
                    Some(s) => {
                        let range = self
                            .t_session_runs()?
                            .range((s, 0u64)..(s, before_order))
                            .map_err(se)?;
                        for item in range.rev() {
                            if push(item.map_err(se)?.1.value(), &mut out)? {
                                break;
                            }
                        }
                    }
                    None => {
                        for item in self.t_run_order()?.range(..before_order).map_err(se)?.rev() {
                            if push(item.map_err(se)?.1.value(), &mut out)? {
                                break;
                            }
                        }
                    }
                }
                Ok(out)
            }
            fn active_runs(&self) -> Result<Vec<StoredRun>> {
                let mut out = Vec::new();
                for item in self.t_active()?.iter().map_err(se)? {
                    if let Some(r) = self.run(item.map_err(se)?.1.value())? {
                        out.push(r);
                    }
                }
                Ok(out)
            }
            fn setting(&self, key: &str) -> Result<Option<String>> {
                Ok(self
                    .t_settings()?
                    .get(key)
                    .map_err(se)?
                    .map(|v| v.value().to_string()))
            }
            fn webhook_keys(&self) -> Result<Vec<StoredWebhookKey>> {
                let mut out = Vec::new();
                for item in self.t_webhook_keys()?.iter().map_err(se)? {
                    let (_, v) = item.map_err(se)?;
                    let b = v.value();
                    if b.len() < 32 {
                        return Err(se("corrupt webhook key record"));
                    }
                    let mut digest = [0u8; 32];
                    digest.copy_from_slice(&b[..32]);
                    out.push(StoredWebhookKey {
                        digest,
                        key: decode(&b[32..])?,
                    });
                }
                Ok(out)
            }
            fn webhook_calls(&self, limit: usize) -> Result<Vec<WebhookCall>> {
                let mut out = Vec::new();
                for item in self.t_webhook_calls()?.iter().map_err(se)?.rev() {
                    if out.len() >= limit {
                        break;
                    }
                    out.push(decode(item.map_err(se)?.1.value())?);
                }
                Ok(out)
            }
            fn device(&self, device_id: &str) -> Result<Option<Device>> {
                match self.t_devices()?.get(device_id).map_err(se)? {
                    Some(v) => Ok(Some(decode(v.value())?)),
                    None => Ok(None),
                }
            }
            fn devices(&self) -> Result<Vec<Device>> {
                let mut out = Vec::new();
                for item in self.t_devices()?.iter().map_err(se)? {
                    out.push(decode(item.map_err(se)?.1.value())?);
                }
                Ok(out)
            }
            fn pairing_requests(&self) -> Result<Vec<PairingRequest>> {
                let mut out = Vec::new();
                for item in self.t_pairing_requests()?.iter().map_err(se)? {
                    out.push(decode(item.map_err(se)?.1.value())?);
                }
                Ok(out)
            }
            fn device_token(&self, digest: &[u8; 32]) -> Result<Option<StoredDeviceToken>> {
                match self.t_device_tokens()?.get(&digest[..]).map_err(se)? {
                    Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(se)?)),
                    None => Ok(None),
                }
            }
            fn device_tokens(&self) -> Result<Vec<StoredDeviceToken>> {
                let mut out = Vec::new();
                for item in self.t_device_tokens()?.iter().map_err(se)? {
                    out.push(serde_json::from_slice(item.map_err(se)?.1.value()).map_err(se)?);
                }
                Ok(out)
            }
        }
    };
}

impl_reader!(WTxn<'_>);
impl_reader!(RSnap);

impl WTxn<'_> {
    /// Notes a timed record's write time, replacing its previous one.
    fn note_time(&mut self, kind: &str, key: &str, ms: u64) -> Result<()> {
        let previous = self
            .record_times
            .insert((kind, key), ms)
            .map_err(se)?
            .map(|v| v.value());
        if let Some(old) = previous {
            self.record_ages.remove((kind, old, key)).map_err(se)?;
        }
        self.record_ages.insert((kind, ms, key), ()).map_err(se)?;
        Ok(())
    }

    fn forget_time(&mut self, kind: &str, key: &str) -> Result<()> {
        let previous = self
            .record_times
            .remove((kind, key))
            .map_err(se)?
            .map(|v| v.value());
        if let Some(old) = previous {
            self.record_ages.remove((kind, old, key)).map_err(se)?;
        }
        Ok(())
    }
}

impl Txn for WTxn<'_> {
    // One process per redb file: it owns every session.
    fn claim_session(&mut self, _session_key: &str) -> Result<bool> {
        Ok(true)
    }

    fn release_session(&mut self, _session_key: &str) -> Result<bool> {
        Ok(true)
    }

    fn heartbeat(&mut self, _lease_ms: i64) -> Result<super::Beat> {
        Ok(super::Beat::default())
    }

    fn leave(&mut self) -> Result<()> {
        Ok(())
    }

    fn hold(&mut self, duties: &[String]) -> Result<Vec<String>> {
        Ok(duties.to_vec())
    }

    fn next_run_order(&mut self) -> Result<u64> {
        let next = self
            .meta
            .get(META_RUN_ORDER)
            .map_err(se)?
            .map(|v| v.value())
            .unwrap_or(1);
        self.meta.insert(META_RUN_ORDER, next + 1).map_err(se)?;
        Ok(next)
    }

    fn put_run(&mut self, r: &StoredRun) -> Result<()> {
        let id = r.run.run_id.as_str();
        let buf = encode_run(r);
        let previous = self.runs.insert(id, buf.as_slice()).map_err(se)?;
        if previous.is_none() {
            self.run_order.insert(r.order, id).map_err(se)?;
            self.session_runs
                .insert((r.run.session_key.as_str(), r.order), id)
                .map_err(se)?;
        }
        drop(previous);
        if is_active(r.run.state) {
            self.active.insert(r.order, id).map_err(se)?;
        } else {
            self.active.remove(r.order).map_err(se)?;
        }
        Ok(())
    }

    fn put_idempotency(&mut self, key: &str, rec: &IdemRecord) -> Result<()> {
        let mut buf = Vec::with_capacity(32 + rec.run_id.len());
        buf.extend_from_slice(&rec.fingerprint);
        buf.extend_from_slice(rec.run_id.as_bytes());
        self.idem.insert(key, buf.as_slice()).map_err(se)?;
        self.run_keys.insert(rec.run_id.as_str(), key).map_err(se)?;
        Ok(())
    }

    fn put_session(&mut self, s: &Session) -> Result<()> {
        let created = self
            .sessions
            .insert(s.session_key.as_str(), s.encode_to_vec().as_slice())
            .map_err(se)?
            .is_none();
        if created {
            let n = self.session_count()?;
            self.meta.insert(META_SESSIONS, n + 1).map_err(se)?;
        }
        Ok(())
    }

    fn delete_session(&mut self, key: &str, session_id: &str) -> Result<()> {
        if self.sessions.remove(key).map_err(se)?.is_some() {
            let n = self.session_count()?;
            self.meta
                .insert(META_SESSIONS, n.saturating_sub(1))
                .map_err(se)?;
        }
        self.system_events.remove(key).map_err(se)?;
        self.messages
            .retain_in((session_id, 0u64)..=(session_id, u64::MAX), |_, _| false)
            .map_err(se)?;
        Ok(())
    }

    fn put_message(&mut self, session_id: &str, m: &Message) -> Result<()> {
        self.messages
            .insert((session_id, m.index), m.encode_to_vec().as_slice())
            .map_err(se)?;
        Ok(())
    }

    fn put_system_events(&mut self, session_key: &str, texts: &[String]) -> Result<()> {
        if texts.is_empty() {
            self.system_events.remove(session_key).map_err(se)?;
        } else {
            let json = serde_json::to_vec(texts).map_err(se)?;
            self.system_events
                .insert(session_key, json.as_slice())
                .map_err(se)?;
        }
        Ok(())
    }

    fn append_event(&mut self, mut event: Event) -> Result<u64> {
        self.last_seq += 1;
        event.seq = self.last_seq;
        event.time = Some(clawplane_proto::now_ts());
        self.events
            .insert(event.seq, event.encode_to_vec().as_slice())
            .map_err(se)?;
        self.new_events.push(Arc::new(event));
        Ok(self.last_seq)
    }

    fn raw_put(&mut self, kind: &str, key: &str, value: &Encoded, timed: bool) -> Result<()> {
        self.records
            .insert((kind, key), value.0.as_slice())
            .map_err(se)?;
        if timed {
            self.note_time(kind, key, u64::try_from(now_ms()).unwrap_or_default())?;
        }
        Ok(())
    }

    fn raw_delete(&mut self, kind: &str, key: &str) -> Result<bool> {
        let existed = self.records.remove((kind, key)).map_err(se)?.is_some();
        self.forget_time(kind, key)?;
        Ok(existed)
    }

    fn prune_runs(
        &mut self,
        cutoff_ms: i64,
        after: u64,
        limit: usize,
    ) -> Result<(usize, Option<u64>)> {
        // Visits are bounded too, so old runs that must stay (still running) cannot make
        // one batch scan the whole table.
        let max_visits = limit.saturating_mul(4).max(1);
        let mut doomed = Vec::new();
        let mut visited = 0;
        let mut resume = None;
        for item in self
            .run_order
            .range(after.saturating_add(1)..)
            .map_err(se)?
        {
            let (order, id) = item.map_err(se)?;
            let order = order.value();
            if let Some(stored) = self.run(id.value())? {
                let run = &stored.run;
                if ts_ms(&run.create_time) >= cutoff_ms {
                    break; // accepted after the cutoff: it cannot have ended before it
                }
                let ended = ts_ms(&run.end_time).max(ts_ms(&run.create_time));
                if !is_active(run.state) && ended < cutoff_ms {
                    doomed.push(stored);
                }
            } else {
                doomed.push(StoredRun {
                    order,
                    run: Run {
                        run_id: id.value().to_string(),
                        ..Default::default()
                    },
                });
            }
            visited += 1;
            if doomed.len() >= limit || visited >= max_visits {
                resume = Some(order);
                break;
            }
        }
        for r in &doomed {
            let id = r.run.run_id.as_str();
            self.runs.remove(id).map_err(se)?;
            self.run_order.remove(r.order).map_err(se)?;
            self.session_runs
                .remove((r.run.session_key.as_str(), r.order))
                .map_err(se)?;
            // The run's idempotency record goes with it; only then can its key be used
            // again. (Runs stored before keys were scoped used their key as their id.)
            let key = self
                .run_keys
                .remove(id)
                .map_err(se)?
                .map(|k| k.value().to_string());
            if let Some(k) = key {
                self.idem.remove(k.as_str()).map_err(se)?;
            } else if self.idempotency(id)?.is_some_and(|rec| rec.run_id == id) {
                self.idem.remove(id).map_err(se)?;
            }
        }
        Ok((doomed.len(), resume))
    }

    fn prune_records(&mut self, kind: &str, cutoff_ms: i64, limit: usize) -> Result<usize> {
        let cutoff = u64::try_from(cutoff_ms).unwrap_or_default();
        let mut doomed = Vec::new();
        for item in self
            .record_ages
            .range((kind, 0u64, "")..(kind, cutoff, ""))
            .map_err(se)?
        {
            if doomed.len() >= limit {
                break;
            }
            let (k, _) = item.map_err(se)?;
            let (_, ms, key) = k.value();
            doomed.push((ms, key.to_string()));
        }
        for (ms, key) in &doomed {
            self.records.remove((kind, key.as_str())).map_err(se)?;
            self.record_times.remove((kind, key.as_str())).map_err(se)?;
            self.record_ages
                .remove((kind, *ms, key.as_str()))
                .map_err(se)?;
        }
        Ok(doomed.len())
    }

    fn backfill_record_times(
        &mut self,
        kind: &str,
        after: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Option<String>> {
        let page = self.raw_scan(kind, after, limit)?;
        let now = u64::try_from(now_ms).unwrap_or_default();
        for (key, _) in &page {
            if self
                .record_times
                .get((kind, key.as_str()))
                .map_err(se)?
                .is_none()
            {
                self.note_time(kind, key, now)?;
            }
        }
        Ok((page.len() >= limit)
            .then(|| page.last().map(|(k, _)| k.clone()))
            .flatten())
    }

    fn put_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.settings.insert(key, value).map_err(se)?;
        Ok(())
    }

    fn put_webhook_key(&mut self, k: &StoredWebhookKey) -> Result<()> {
        let mut buf = Vec::with_capacity(32 + k.key.encoded_len());
        buf.extend_from_slice(&k.digest);
        k.key.encode(&mut buf).map_err(se)?;
        self.webhook_keys
            .insert(k.key.key_id.as_str(), buf.as_slice())
            .map_err(se)?;
        Ok(())
    }

    fn delete_webhook_key(&mut self, key_id: &str) -> Result<bool> {
        Ok(self.webhook_keys.remove(key_id).map_err(se)?.is_some())
    }

    fn append_webhook_call(&mut self, call: &WebhookCall, keep: usize) -> Result<()> {
        let n = self
            .meta
            .get(META_WEBHOOK_CALL)
            .map_err(se)?
            .map(|v| v.value())
            .unwrap_or(1);
        self.meta.insert(META_WEBHOOK_CALL, n + 1).map_err(se)?;
        self.webhook_calls
            .insert(n, call.encode_to_vec().as_slice())
            .map_err(se)?;
        let keep = keep as u64;
        if n > keep {
            self.webhook_calls
                .retain_in(..=n - keep, |_, _| false)
                .map_err(se)?;
        }
        Ok(())
    }

    fn put_device(&mut self, d: &Device) -> Result<()> {
        self.devices
            .insert(d.device_id.as_str(), d.encode_to_vec().as_slice())
            .map_err(se)?;
        Ok(())
    }

    fn delete_device(&mut self, device_id: &str) -> Result<bool> {
        Ok(self.devices.remove(device_id).map_err(se)?.is_some())
    }

    fn put_pairing_request(&mut self, r: &PairingRequest) -> Result<()> {
        self.pairing_requests
            .insert(r.request_id.as_str(), r.encode_to_vec().as_slice())
            .map_err(se)?;
        Ok(())
    }

    fn delete_pairing_request(&mut self, request_id: &str) -> Result<bool> {
        Ok(self
            .pairing_requests
            .remove(request_id)
            .map_err(se)?
            .is_some())
    }

    fn put_device_token(&mut self, t: &StoredDeviceToken) -> Result<()> {
        let json = serde_json::to_vec(t).map_err(se)?;
        self.device_tokens
            .insert(t.digest.as_slice(), json.as_slice())
            .map_err(se)?;
        Ok(())
    }

    fn delete_device_token(&mut self, digest: &[u8; 32]) -> Result<()> {
        self.device_tokens.remove(digest.as_slice()).map_err(se)?;
        Ok(())
    }

    fn delete_device_tokens(&mut self, device_id: &str, role: Option<&str>) -> Result<usize> {
        let mut n = 0;
        self.device_tokens
            .retain(|_, v| {
                let hit = serde_json::from_slice::<StoredDeviceToken>(v)
                    .is_ok_and(|t| t.device_id == device_id && role.is_none_or(|r| r == t.role));
                if hit {
                    n += 1;
                }
                !hit
            })
            .map_err(se)?;
        Ok(n)
    }
}
