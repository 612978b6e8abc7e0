//! Authentication and authorization: one check every handler calls first. Resolves the
//! caller from its credentials, demands a scope, and counts failures per client address.

use crate::{
    config::RateLimitConfig,
    error::{Error, Result},
    store::{Ephemeral, Store},
};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// What an RPC demands of its caller (the table is `api::required_scope`). Operator scopes
/// use OpenClaw names; `operator.admin` covers everything and `operator.write` covers
/// `operator.read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    Admin,
    Approvals,
    Pairing,
    /// A hook operation that reads (AgentService/GetRun): the hooks token, or an operator
    /// with `operator.read`.
    HookRead,
    /// A hook operation that acts (AgentService/Run and Wait, GatewayService/Wake): the
    /// hooks token, or an operator with `operator.write`.
    HookWrite,
    /// No credential needed (DeviceService/Challenge; DeviceService/ConnectDevice checks a
    /// presented credential but proves the device itself).
    Public,
    /// The handler checks its own credential (webhook API keys, ingress secrets).
    OwnCredential,
    /// Any valid credential (GatewayService/GetCaller).
    Authenticated,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read | Scope::HookRead => "operator.read",
            Scope::Write | Scope::HookWrite => "operator.write",
            Scope::Admin => "operator.admin",
            Scope::Approvals => "operator.approvals",
            Scope::Pairing => "operator.pairing",
            Scope::Public | Scope::OwnCredential | Scope::Authenticated => "",
        }
    }
}

/// Every operator scope a device may ask for (`src/gateway/operator-scopes.ts`).
pub const KNOWN_SCOPES: [&str; 10] = [
    "operator.read",
    "operator.write",
    "operator.admin",
    "operator.approvals",
    "operator.pairing",
    "operator.questions",
    "operator.talk",
    "operator.talk.secrets",
    "operator.sessions.read",
    "operator.sessions.write",
];

/// The interned name of a known scope.
pub fn known_scope(s: &str) -> Option<&'static str> {
    KNOWN_SCOPES.iter().copied().find(|k| *k == s)
}

/// True when `held` satisfies `need` (admin ⊇ all; write ⊇ read, talk and session scopes).
pub fn scope_covers(held: &[&str], need: &str) -> bool {
    held.contains(&"operator.admin")
        || held.contains(&need)
        || (held.contains(&"operator.write")
            && matches!(
                need,
                "operator.read"
                    | "operator.talk"
                    | "operator.sessions.read"
                    | "operator.sessions.write"
            ))
}

/// What kind of credential the caller presented.
#[derive(Debug, Clone)]
pub enum Kind {
    /// The shared gateway token (full operator scopes).
    Gateway,
    /// The hooks token.
    Hooks,
    /// A device token: exactly the scopes approved for that device role. `revoked` fires
    /// when the token is revoked or rotated; streams end on it.
    Device {
        device_id: String,
        role: String,
        revoked: CancellationToken,
    },
    /// No credential (only for [`Scope::Public`] calls).
    Anonymous,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub scopes: Vec<&'static str>,
    pub kind: Kind,
}

impl Principal {
    /// True for the hooks token: the core holds its runs and wakes to `hooks.*`.
    pub fn is_hooks(&self) -> bool {
        matches!(self.kind, Kind::Hooks)
    }

    /// Whose idempotency keys a caller's keys are: one namespace per credential, so a key
    /// one caller chose cannot answer (or pre-empt) another caller's request.
    pub fn key_scope(&self) -> String {
        self.credential_key().unwrap_or_else(|| "anonymous".into())
    }

    /// The credential a request bucket belongs to; none for anonymous callers.
    fn credential_key(&self) -> Option<String> {
        match &self.kind {
            Kind::Gateway => Some("gateway".into()),
            Kind::Hooks => Some("hooks".into()),
            Kind::Device {
                device_id, role, ..
            } => Some(format!("device:{device_id}:{role}")),
            Kind::Anonymous => None,
        }
    }
}

/// The only scope of the hooks token (`hooks.token`): the hook operations, nothing else.
pub const HOOKS_SCOPE: &str = "hooks";

/// The scopes of the gateway token: every operator scope (a deliberate difference from
/// OpenClaw, which clears a device-less shared-secret caller's scopes).
pub const OPERATOR_SCOPES: [&str; 5] = [
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
];

impl Principal {
    fn operator() -> Self {
        Principal {
            scopes: OPERATOR_SCOPES.to_vec(),
            kind: Kind::Gateway,
        }
    }

    fn hooks() -> Self {
        Principal {
            scopes: vec![HOOKS_SCOPE],
            kind: Kind::Hooks,
        }
    }

    /// The caller without credentials.
    pub fn anonymous() -> Self {
        Principal {
            scopes: Vec::new(),
            kind: Kind::Anonymous,
        }
    }

    /// The device and role of a device-token caller.
    pub fn device(&self) -> Option<(&str, &str)> {
        match &self.kind {
            Kind::Device {
                device_id, role, ..
            } => Some((device_id, role)),
            _ => None,
        }
    }

    /// True for the shared gateway token (the credential silent local pairing needs).
    pub fn is_gateway_token(&self) -> bool {
        matches!(self.kind, Kind::Gateway)
    }

    /// Fires when this caller's credential is revoked (device tokens only).
    pub fn revoked(&self) -> Option<CancellationToken> {
        match &self.kind {
            Kind::Device { revoked, .. } => Some(revoked.clone()),
            _ => None,
        }
    }

    /// True when the caller holds every scope `need` demands.
    pub fn has(&self, need: Scope) -> bool {
        match need {
            Scope::Public | Scope::OwnCredential | Scope::Authenticated => return true,
            Scope::HookRead | Scope::HookWrite if self.scopes.contains(&HOOKS_SCOPE) => {
                return true;
            }
            _ => {}
        }
        scope_covers(&self.scopes, need.name())
    }

    /// `Ok` when the caller has `need`, else PERMISSION_DENIED `MISSING_SCOPE`.
    pub fn demand(&self, need: Scope) -> Result<()> {
        if self.has(need) {
            Ok(())
        } else {
            Err(Error::MissingScope {
                missing: need.name().to_string(),
                required: vec![need.name().to_string()],
            })
        }
    }

    /// `Ok` when the caller covers every scope in `needs` (an approver approving them).
    pub fn demand_all(&self, needs: &[String]) -> Result<()> {
        match needs.iter().find(|n| !scope_covers(&self.scopes, n)) {
            None => Ok(()),
            Some(m) => Err(Error::MissingScope {
                missing: m.clone(),
                required: needs.to_vec(),
            }),
        }
    }
}

/// A live device token: who it belongs to and what it carries.
#[derive(Debug, Clone)]
pub struct Grant {
    pub device_id: String,
    pub role: String,
    pub scopes: Vec<&'static str>,
}

/// Live device tokens (by SHA-256 digest) and the per-principal revocation registry. The
/// store is the truth; the device core keeps this index in step on every commit. The
/// WebSocket shim holds [`DeviceIndex::revocation`] tokens to close sockets with 4001.
#[derive(Default)]
pub struct DeviceIndex {
    tokens: std::sync::RwLock<HashMap<[u8; 32], Grant>>,
    /// With replicas: reads a token this index does not hold from the store (one issued
    /// by another replica; issuing a token appends no event for the others to follow).
    loader: std::sync::OnceLock<Loader>,
    revocations: Mutex<HashMap<(String, String), CancellationToken>>,
    /// Open streams per device (for `Device.connected`).
    open: Mutex<HashMap<String, usize>>,
}

/// See [`DeviceIndex::load_missing`].
type Loader = Box<dyn Fn(&[u8; 32]) -> Option<Grant> + Send + Sync>;

impl DeviceIndex {
    /// The grant of a presented device token.
    pub fn lookup(&self, digest: &[u8; 32]) -> Option<Grant> {
        let held = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned();
        held.or_else(|| {
            let grant = self.loader.get()?(digest)?;
            self.insert(*digest, grant.clone());
            // Revoked between the read and the insert (the follower already ran): drop it.
            if self.loader.get()?(digest).is_none() {
                self.remove_digest(digest);
                return None;
            }
            Some(grant)
        })
    }

    /// Sets how a token missing here is read from the store (once).
    pub fn load_missing(&self, f: Loader) {
        let _ = self.loader.set(f);
    }

    /// Adds a live token.
    pub fn insert(&self, digest: [u8; 32], grant: Grant) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, grant);
    }

    /// Drops one token (evicted past the per-role cap; its streams are not ended).
    pub fn remove_digest(&self, digest: &[u8; 32]) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }

    /// Drops every token of a device (one role, or all) and fires their revocation tokens,
    /// which ends that principal's open streams and sockets at once.
    pub fn revoke(&self, device_id: &str, role: Option<&str>) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, g| !(g.device_id == device_id && role.is_none_or(|r| r == g.role)));
        let mut map = super::core::lock(&self.revocations);
        map.retain(|(d, r), tok| {
            let hit = d == device_id && role.is_none_or(|x| x == r);
            if hit {
                tok.cancel();
            }
            !hit
        });
    }

    /// The revocation token of a device role: cancelled when its tokens are revoked,
    /// rotated or the device removed.
    pub fn revocation(&self, device_id: &str, role: &str) -> CancellationToken {
        super::core::lock(&self.revocations)
            .entry((device_id.to_string(), role.to_string()))
            .or_default()
            .clone()
    }

    /// The live tokens of a device: (digest, role).
    pub fn tokens_of(&self, device_id: &str) -> Vec<([u8; 32], String)> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, g)| g.device_id == device_id)
            .map(|(d, g)| (*d, g.role.clone()))
            .collect()
    }

    /// Number of live tokens of a device role.
    pub fn active_tokens(&self, device_id: &str, role: &str) -> u32 {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|g| g.device_id == device_id && g.role == role)
            .count() as u32
    }

    /// Marks a stream of `device_id` open until the guard drops.
    pub fn open_stream(self: &std::sync::Arc<Self>, device_id: &str) -> StreamGuard {
        *super::core::lock(&self.open)
            .entry(device_id.to_string())
            .or_default() += 1;
        StreamGuard {
            index: self.clone(),
            device_id: device_id.to_string(),
        }
    }

    /// True while the device has an open stream.
    pub fn connected(&self, device_id: &str) -> bool {
        super::core::lock(&self.open)
            .get(device_id)
            .is_some_and(|n| *n > 0)
    }
}

/// Keeps a device counted as connected.
pub struct StreamGuard {
    index: std::sync::Arc<DeviceIndex>,
    device_id: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut map = super::core::lock(&self.index.open);
        if let Some(n) = map.get_mut(&self.device_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.device_id);
            }
        }
    }
}

/// A token bucket of requests.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: crate::config::RequestRate) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Refills to `now` and says how long until a token is there when there is none.
    fn check(&mut self, rate: crate::config::RequestRate, now: Instant) -> Result<(), Duration> {
        let cap = f64::from(rate.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.requests_per_second).min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.requests_per_second,
            ))
        }
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, rate: crate::config::RequestRate, now: Instant) -> Result<(), Duration> {
        self.check(rate, now)?;
        self.tokens -= 1.0;
        Ok(())
    }
}

struct Failures {
    count: u32,
    window_start: Instant,
}

/// What failures are counted against: an IPv4 address, or an IPv6 /64 (what one subscriber
/// typically holds, so rotating through its addresses buys an attacker nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match clawplane_util::net::canonical(ip) {
            IpAddr::V6(a) => {
                let bits = u128::from(a) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(bits.into()))
            }
            v4 => ClientKey(v4),
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The kind of credential a failure was for. A success with one kind clears only that
/// kind's failures: a caller holding a valid webhook key cannot reset the count of its
/// guesses at the gateway token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Realm {
    /// Bearer tokens: the gateway, hooks and device tokens.
    Token,
    /// Synchronous webhook API keys.
    WebhookKey,
    /// Ingress secrets and signatures, channel webhook signatures and secret tokens, the
    /// WhatsApp verify token.
    Signature,
    /// Device identity proofs.
    DeviceProof,
}

impl Realm {
    const ALL: [Realm; 4] = [
        Realm::Token,
        Realm::WebhookKey,
        Realm::Signature,
        Realm::DeviceProof,
    ];

    fn name(self) -> &'static str {
        match self {
            Realm::Token => "token",
            Realm::WebhookKey => "webhook-key",
            Realm::Signature => "signature",
            Realm::DeviceProof => "device-proof",
        }
    }

    /// The realm of a credential error.
    fn of(err: &Error) -> Realm {
        match err {
            Error::WebhookKeyInvalid => Realm::WebhookKey,
            Error::SignatureInvalid(_) | Error::VerifyTokenMismatch(_) => Realm::Signature,
            Error::DeviceProof(_) => Realm::DeviceProof,
            _ => Realm::Token,
        }
    }
}

/// Failure counts and lockouts, each in an LRU of bounded size: a flood of addresses
/// evicts the least recently seen in O(1) instead of growing the table or scanning it.
struct Lockouts {
    failures: lru::LruCache<(ClientKey, Realm), Failures>,
    locked: lru::LruCache<ClientKey, Instant>,
}

impl Lockouts {
    fn new(capacity: usize) -> Lockouts {
        let cap =
            std::num::NonZeroUsize::new(capacity.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        Lockouts {
            failures: lru::LruCache::new(cap),
            locked: lru::LruCache::new(cap),
        }
    }

    /// How long `key` stays locked out, if it is.
    fn locked_for(&mut self, key: ClientKey, now: Instant) -> Option<Duration> {
        match self.locked.peek(&key) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                self.locked.pop(&key);
                None
            }
            None => None,
        }
    }
}

/// The gateway's credential check.
pub struct Auth {
    token_digest: [u8; 32],
    /// The hooks token (`hooks.token`), set when the hooks bridge is enabled.
    hooks_digest: std::sync::OnceLock<[u8; 32]>,
    /// Where the token comes from, for error messages.
    source: String,
    limits: RateLimitConfig,
    lockouts: Mutex<Lockouts>,
    /// Request buckets per credential (`gateway.auth.rateLimit.perCredential`).
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Request buckets per client address of anonymous and own-key callers
    /// (`gateway.auth.rateLimit.perAddress`), bounded by `maxTrackedClients`.
    address_buckets: Mutex<lru::LruCache<ClientKey, Bucket>>,
    /// The gateway-wide bucket (`gateway.auth.rateLimit.global`).
    global: Mutex<Bucket>,
    /// Told when an address gets locked out (the gateway records a SECURITY event).
    on_lockout: std::sync::OnceLock<Box<dyn Fn(IpAddr, Duration) + Send + Sync>>,
    /// With replicas: tells the others of each failure, lockout and success that cleared
    /// failures (see [`Auth::share`]).
    peers: std::sync::OnceLock<Box<dyn Fn(String) + Send + Sync>>,
    /// With replicas: the store whose [`Ephemeral`] state holds the cluster's request
    /// buckets and failure counts.
    cluster: std::sync::OnceLock<Store>,
}

/// The prefix of the failure and success messages replicas exchange (see [`Auth::share`]).
const PEER: &str = "auth:";

/// The key of an address's failure count of one realm among the replicas.
fn failure_key(ip: IpAddr, realm: Realm) -> String {
    format!("{}:{}", realm.name(), ClientKey::of(ip))
}

/// Where the gateway token came from.
pub enum TokenSource {
    Config,
    /// The environment variable it came from.
    Env(&'static str),
    File(PathBuf),
}

/// The file `serve` generates the token into.
pub fn token_file(data_dir: &Path) -> PathBuf {
    data_dir.join("gateway.token")
}

/// Reads `<data-dir>/gateway.token`, generating it (32 random bytes, base64url, mode 0600)
/// on first start.
pub fn load_or_generate_token(data_dir: &Path) -> std::io::Result<String> {
    let path = token_file(data_dir);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_token(data_dir, &token)?;
    Ok(token)
}

/// Writes `<data-dir>/gateway.token` (mode 0600, atomically).
pub fn write_token(data_dir: &Path, token: &str) -> std::io::Result<()> {
    let path = token_file(data_dir);
    std::fs::create_dir_all(data_dir)?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)
}

/// SHA-256 of a token (how tokens are compared and stored).
pub fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Auth {
    pub fn new(token: &str, source: TokenSource, limits: RateLimitConfig) -> Self {
        let source = match source {
            TokenSource::Config => "gateway.auth.token in its config file".to_string(),
            TokenSource::Env(var) => format!("the env {var} it was started with"),
            TokenSource::File(p) => format!(
                "in the file {} (generated by `clawplane serve` when neither gateway.auth.token nor CLAWPLANE_GATEWAY_TOKEN is set)",
                p.display()
            ),
        };
        Auth {
            token_digest: digest(token),
            hooks_digest: std::sync::OnceLock::new(),
            source,
            lockouts: Mutex::new(Lockouts::new(limits.max_tracked_clients)),
            buckets: Mutex::default(),
            address_buckets: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(limits.max_tracked_clients.max(1))
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            global: Mutex::new(Bucket::full(limits.global)),
            on_lockout: std::sync::OnceLock::new(),
            peers: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
            limits,
        }
    }

    /// Shares the limits with other replicas: request buckets and failure counts live in
    /// `store`'s [`Ephemeral`] state (one count wherever an address's attempts land, one
    /// lockout alert); `send` tells the others of failures, lockouts and successes, and
    /// what they send is given to [`Auth::from_peer`], so a locked-out address is refused
    /// everywhere without asking the store on every call.
    pub fn share(&self, store: Store, send: impl Fn(String) + Send + Sync + 'static) {
        let _ = self.cluster.set(store);
        let _ = self.peers.set(Box::new(send));
    }

    fn ephemeral(&self) -> Option<&dyn Ephemeral> {
        self.cluster.get().and_then(|s| s.ephemeral())
    }

    /// A failure, lockout or success another replica saw (`auth:fail:<realm>:<ip>`,
    /// `auth:lock:<realm>:<ip>`, `auth:ok:<realm>:<ip>`); other messages are ignored. A
    /// failure is only noted (so a success here clears the shared count); a lockout is
    /// not reported again (the replica that counted past the limit reports it).
    pub fn from_peer(&self, message: &str) {
        let Some(rest) = message.strip_prefix(PEER) else {
            return;
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(what), Some(realm), Some(ip)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let (Some(realm), Ok(ip)) = (
            Realm::ALL.into_iter().find(|r| r.name() == realm),
            ip.parse::<IpAddr>(),
        ) else {
            return;
        };
        match what {
            "fail" => {
                let mut t = super::core::lock(&self.lockouts);
                t.failures
                    .get_or_insert_mut((ClientKey::of(ip), realm), || Failures {
                        count: 0,
                        window_start: Instant::now(),
                    });
            }
            "lock" => {
                let now = Instant::now();
                super::core::lock(&self.lockouts).locked.put(
                    ClientKey::of(ip),
                    now + Duration::from_millis(self.limits.lockout_ms),
                );
            }
            "ok" => {
                super::core::lock(&self.lockouts)
                    .failures
                    .pop(&(ClientKey::of(ip), realm));
            }
            _ => {}
        }
    }

    fn tell_peers(&self, what: &str, realm: Realm, ip: IpAddr) {
        if let Some(send) = self.peers.get() {
            send(format!("{PEER}{what}:{}:{ip}", realm.name()));
        }
    }

    /// Spends one request of the caller's bucket — its credential's, or for an anonymous
    /// caller its client address's — and of the global bucket; RESOURCE_EXHAUSTED
    /// `RATE_LIMITED` with the wait when either is empty.
    pub fn admit(&self, p: &Principal, peer: Option<IpAddr>) -> Result<(), Error> {
        match p.credential_key() {
            Some(key) => self.spend_credential(key)?,
            None => self.spend_address(peer)?,
        }
        self.spend_global()
    }

    /// For calls that bring their own key (sync webhooks, ingress): spends one request of
    /// the client address's bucket and of the global bucket, before the key is checked, so
    /// a flood of guesses is throttled like any other traffic.
    pub fn admit_client(&self, peer: Option<IpAddr>) -> Result<(), Error> {
        self.spend_address(peer)?;
        self.spend_global()
    }

    /// Spends one request of a credential checked elsewhere (`webhook-key:<id>`) once it
    /// verified.
    pub fn admit_credential(&self, key: String) -> Result<(), Error> {
        self.spend_credential(key)
    }

    /// One request of a bucket that `with` reaches (locking its table for the call).
    /// One process: checked and spent under one lock. With replicas: this replica's
    /// bucket has spent no more than the cluster's of the same key (it counts only this
    /// replica's requests), so an empty one answers without asking; otherwise the
    /// cluster's bucket (`shared`) decides, with no lock held across that round trip, and
    /// the local one is spent after.
    fn spend_bucket(
        &self,
        rate: crate::config::RequestRate,
        shared: impl FnOnce() -> String,
        with: impl Fn(&mut dyn FnMut(&mut Bucket)),
    ) -> Result<(), Duration> {
        let now = Instant::now();
        let mut out = Ok(());
        let Some(eph) = self.ephemeral() else {
            with(&mut |b| out = b.take(rate, now));
            return out;
        };
        with(&mut |b| out = b.check(rate, now));
        out?;
        match eph.spend(&shared(), rate.requests_per_second, rate.burst) {
            Ok(Ok(())) => {}
            Ok(Err(wait)) => return Err(wait),
            // The local bucket still holds: an unreachable store does not stop traffic
            // that one replica's own limit admits.
            Err(e) => tracing::warn!(error = %e, "cannot spend the replicas' request bucket"),
        }
        with(&mut |b| b.tokens = (b.tokens - 1.0).max(0.0));
        Ok(())
    }

    fn spend_credential(&self, key: String) -> Result<(), Error> {
        let rate = self.limits.per_credential;
        if rate.requests_per_second <= 0.0 {
            return Ok(());
        }
        self.spend_bucket(
            rate,
            || format!("cred:{key}"),
            |f| {
                let mut map = super::core::lock(&self.buckets);
                if map.len() > 10_000 {
                    map.retain(|_, b| b.tokens < f64::from(rate.burst.max(1)));
                }
                f(map.entry(key.clone()).or_insert_with(|| Bucket::full(rate)));
            },
        )
        .map_err(|wait| Error::RequestRateLimited {
            scope: "credential",
            key: "perCredential",
            retry_after: wait,
        })
    }

    /// The client address's bucket; a caller without a known address (an in-process call)
    /// meets only the global bucket.
    fn spend_address(&self, peer: Option<IpAddr>) -> Result<(), Error> {
        let rate = self.limits.per_address;
        let Some(ip) = peer.filter(|_| rate.requests_per_second > 0.0) else {
            return Ok(());
        };
        // An LRU: a flood of addresses evicts the least recently seen instead of growing
        // the table (an evicted address starts again with a full bucket).
        let key = ClientKey::of(ip);
        self.spend_bucket(
            rate,
            || format!("addr:{key}"),
            |f| {
                f(super::core::lock(&self.address_buckets)
                    .get_or_insert_mut(key, || Bucket::full(rate)))
            },
        )
        .map_err(|wait| Error::RequestRateLimited {
            scope: "address",
            key: "perAddress",
            retry_after: wait,
        })
    }

    fn spend_global(&self) -> Result<(), Error> {
        let rate = self.limits.global;
        if rate.requests_per_second <= 0.0 {
            return Ok(());
        }
        self.spend_bucket(
            rate,
            || "global".to_string(),
            |f| f(&mut super::core::lock(&self.global)),
        )
        .map_err(|wait| Error::RequestRateLimited {
            scope: "global",
            key: "global",
            retry_after: wait,
        })
    }

    /// Sets what to do when an address gets locked out (once; later calls are ignored).
    pub fn on_lockout(&self, f: impl Fn(IpAddr, Duration) + Send + Sync + 'static) {
        let _ = self.on_lockout.set(Box::new(f));
    }

    /// Also accepts the hooks token (`hooks.token`), which grants only the hook operations
    /// ([`Scope::HookRead`], [`Scope::HookWrite`]). Its failures count in the same
    /// per-address limiter. Set once; later calls are ignored.
    pub fn enable_hooks_token(&self, token: &str) {
        let _ = self.hooks_digest.set(digest(token));
    }

    /// Resolves the caller from a presented credential (gateway token, hooks token, or a
    /// live device token from `devices`) and demands `need`.
    pub fn check(
        &self,
        presented: Option<&str>,
        peer: Option<IpAddr>,
        need: Scope,
        devices: Option<&DeviceIndex>,
    ) -> Result<Principal> {
        let p = self.authenticate(presented, peer, devices)?;
        p.demand(need)?;
        Ok(p)
    }

    /// Resolves the caller from a presented credential; counts failures per address.
    pub fn authenticate(
        &self,
        presented: Option<&str>,
        peer: Option<IpAddr>,
        devices: Option<&DeviceIndex>,
    ) -> Result<Principal> {
        let now = Instant::now();
        self.refuse_locked(peer, now)?;
        let ok = match presented.map(digest) {
            None => Err(Error::TokenMissing(self.source.clone())),
            Some(d) if bool::from(d.ct_eq(&self.token_digest)) => Ok(Principal::operator()),
            Some(d)
                if self
                    .hooks_digest
                    .get()
                    .is_some_and(|h| bool::from(d.ct_eq(h))) =>
            {
                Ok(Principal::hooks())
            }
            Some(d) => match devices.and_then(|i| i.lookup(&d).map(|g| (i, g))) {
                Some((index, g)) => Ok(Principal {
                    scopes: g.scopes,
                    kind: Kind::Device {
                        revoked: index.revocation(&g.device_id, &g.role),
                        device_id: g.device_id,
                        role: g.role,
                    },
                }),
                None => Err(Error::TokenInvalid(self.source.clone())),
            },
        };
        let p = match ok {
            Ok(p) => p,
            Err(e) => return Err(self.failed(peer, e)),
        };
        self.succeeded(peer, Realm::Token);
        Ok(p)
    }

    fn refuse_locked(&self, peer: Option<IpAddr>, now: Instant) -> Result<()> {
        if let Some(ip) = peer
            && let Some(retry_after) =
                super::core::lock(&self.lockouts).locked_for(ClientKey::of(ip), now)
        {
            return Err(Error::RateLimited {
                addr: ip.to_string(),
                retry_after,
            });
        }
        Ok(())
    }

    /// For credentials checked elsewhere (webhook keys and signatures): refuses a locked-out
    /// address.
    pub fn gate(&self, peer: Option<IpAddr>) -> Result<()> {
        self.refuse_locked(peer, Instant::now())
    }

    /// For credentials checked elsewhere: counts a failure from `peer` and returns the
    /// error to answer (`err`, or the rate-limit error past the threshold).
    pub fn failed(&self, peer: Option<IpAddr>, err: Error) -> Error {
        match peer {
            Some(ip) => self
                .fail(ip, Realm::of(&err), Instant::now())
                .unwrap_or(err),
            None => err,
        }
    }

    /// A success clears the address's failures of that realm only.
    pub fn succeeded(&self, peer: Option<IpAddr>, realm: Realm) {
        if let Some(ip) = peer {
            let had = super::core::lock(&self.lockouts)
                .failures
                .pop(&(ClientKey::of(ip), realm))
                .is_some();
            if had {
                if let Some(eph) = self.ephemeral()
                    && let Err(e) = eph.clear_failures(&failure_key(ip, realm))
                {
                    tracing::warn!(error = %e, "cannot clear the replicas' failure count");
                }
                self.tell_peers("ok", realm, ip);
            }
        }
    }

    /// Records a failure; past `maxAttempts` within the window the address (its /64) is
    /// locked out for every credential, and the rate-limit error is returned.
    fn fail(&self, ip: IpAddr, realm: Realm, now: Instant) -> Option<Error> {
        self.tell_peers("fail", realm, ip);
        let (lock, newly) = self.count(ip, realm, now)?;
        if newly && let Some(alert) = self.on_lockout.get() {
            alert(ip, lock);
        }
        Some(Error::RateLimited {
            addr: ip.to_string(),
            retry_after: lock,
        })
    }

    /// Counts a failure; past `maxAttempts` within the window locks the address out and
    /// returns for how long, and whether it was not locked out before.
    /// With replicas the count is the cluster's (the store's [`Ephemeral`] state) and
    /// "newly" holds on exactly one replica: the one whose failure crossed the limit.
    fn count(&self, ip: IpAddr, realm: Realm, now: Instant) -> Option<(Duration, bool)> {
        let key = ClientKey::of(ip);
        let window = Duration::from_millis(self.limits.window_ms);
        let shared = self.ephemeral().and_then(|eph| {
            eph.count_failure(&failure_key(ip, realm), self.limits.window_ms as i64)
                .inspect_err(
                    |e| tracing::warn!(error = %e, "cannot count a failure with the replicas"),
                )
                .ok()
        });
        let mut t = super::core::lock(&self.lockouts);
        let f = t.failures.get_or_insert_mut((key, realm), || Failures {
            count: 0,
            window_start: now,
        });
        if now.duration_since(f.window_start) > window {
            f.count = 0;
            f.window_start = now;
        }
        f.count = match shared {
            Some(n) => n,
            None => f.count + 1,
        };
        let count = f.count;
        if count <= self.limits.max_attempts {
            return None;
        }
        let lock = Duration::from_millis(self.limits.lockout_ms);
        let newly = match shared {
            Some(n) => n == self.limits.max_attempts + 1,
            None => t.locked_for(key, now).is_none(),
        };
        t.locked.put(key, now + lock);
        drop(t);
        if shared.is_some() && newly {
            self.tell_peers("lock", realm, ip);
        }
        Some((lock, newly))
    }
}

/// Extracts the credential from `authorization: Bearer <t>` (scheme case-insensitive) or
/// `x-openclaw-token`.
pub fn bearer(authorization: Option<&str>, openclaw_token: Option<&str>) -> Option<String> {
    if let Some(v) = authorization {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            let t = v[7..].trim();
            if !t.is_empty() {
                return Some(t.to_string());
            }
        }
    }
    openclaw_token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(max_attempts: u32, tracked: usize) -> Auth {
        Auth::new(
            "the-token",
            TokenSource::Config,
            RateLimitConfig {
                max_attempts,
                max_tracked_clients: tracked,
                ..RateLimitConfig::default()
            },
        )
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn locked(a: &Auth, peer: &str) -> bool {
        matches!(a.gate(ip(peer)), Err(Error::RateLimited { .. }))
    }

    #[test]
    fn ipv6_failures_count_per_64() {
        let a = auth(2, 100);
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            let _ = a.authenticate(Some("wrong"), ip(host), None);
        }
        assert!(locked(&a, "2001:db8:1:2::abcd"), "the whole /64 is locked");
        assert!(!locked(&a, "2001:db8:1:3::1"), "the next /64 is not");
        assert!(!locked(&a, "192.0.2.1"));
        // IPv4-mapped addresses count as the IPv4 address.
        let a = auth(1, 100);
        let _ = a.authenticate(Some("wrong"), ip("::ffff:192.0.2.7"), None);
        let _ = a.authenticate(Some("wrong"), ip("192.0.2.7"), None);
        assert!(locked(&a, "192.0.2.7"));
    }

    #[test]
    fn a_success_clears_only_its_own_realm() {
        let a = auth(3, 100);
        let peer = ip("192.0.2.10");
        for _ in 0..3 {
            let _ = a.authenticate(Some("guess"), peer, None);
        }
        // A valid webhook key (another realm) does not reset the token guesses.
        a.succeeded(peer, Realm::WebhookKey);
        assert!(a.authenticate(Some("guess"), peer, None).is_err());
        assert!(locked(&a, "192.0.2.10"), "the 4th token guess locks");
        // Webhook-key failures are counted on their own and cleared by a key success.
        let b = auth(2, 100);
        let peer = ip("192.0.2.11");
        for _ in 0..2 {
            let _ = b.failed(peer, Error::WebhookKeyInvalid);
        }
        b.succeeded(peer, Realm::WebhookKey);
        let _ = b.failed(peer, Error::WebhookKeyInvalid);
        assert!(
            !locked(&b, "192.0.2.11"),
            "the key success reset the key count"
        );
        assert!(b.authenticate(Some("the-token"), peer, None).is_ok());
    }

    #[test]
    fn anonymous_callers_spend_a_bucket_per_address() {
        let a = Auth::new(
            "the-token",
            TokenSource::Config,
            RateLimitConfig {
                per_address: crate::config::RequestRate {
                    requests_per_second: 0.001,
                    burst: 2,
                },
                max_tracked_clients: 8,
                ..RateLimitConfig::default()
            },
        );
        let anon = Principal::anonymous();
        for _ in 0..2 {
            assert!(a.admit(&anon, ip("2001:db8:1:2::1")).is_ok());
        }
        // The same /64 shares the bucket; another address has its own.
        assert!(matches!(
            a.admit(&anon, ip("2001:db8:1:2::9")),
            Err(Error::RequestRateLimited {
                scope: "address",
                ..
            })
        ));
        assert!(a.admit_client(ip("2001:db8:1:3::1")).is_ok());
        // A credential is not charged per address.
        assert!(
            a.admit(&Principal::operator(), ip("2001:db8:1:2::1"))
                .is_ok()
        );
        for i in 0..1000u32 {
            let peer = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            let _ = a.admit(&anon, peer);
        }
        assert!(super::super::core::lock(&a.address_buckets).len() <= 8);
    }

    #[test]
    fn the_table_is_bounded() {
        let a = auth(1, 8);
        for i in 0..1000u32 {
            let peer = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            let _ = a.authenticate(Some("wrong"), peer, None);
        }
        let t = super::super::core::lock(&a.lockouts);
        assert!(t.failures.len() <= 8 && t.locked.len() <= 8);
    }
}
