//! The shared tier: cache entries in Redis, shared by processes and machines.
//!
//! [`open`] takes a `redis://` URL and the team key and returns a [`SharedStore`]: bytes by
//! key with an expiry, signed, chunked below Redis' value limit, with a compute-once lock.
//! What the bytes mean is the caller's business; this module only guarantees that what
//! [`SharedStore::get`] returns is exactly what some [`SharedStore::put`] stored under that key
//! (with the team key: stored by someone holding it), or nothing.
//!
//! - `format`: the header in front of every entry, decoded within a size limit.
//! - `signing`: SHA-256 digest and HMAC-SHA256 tag.
//! - `keys`: the Redis keys (all under `cellar:`), write ids and lock tokens.
//! - `pool`: connections with connect/read/write timeouts, reopened after a restart.
//! - `breaker`: fail fast for a pause after a failure.
//! - `fault`: what a Redis error means to the user, and whether the store is down.
//! - `address`: the store's URL as shown, without credentials.
//! - `redis`: [`SharedStore`] on Redis, putting these together.
//!
//! Faults never hang a caller: a call waits at most about the connect timeout plus the
//! read/write timeout (1 s each by default), and after a failure calls fail at once for
//! [`StoreOptions::retry_after`] before one of them tries the network again.

mod address;
mod breaker;
mod fault;
pub mod format;
mod keys;
mod pool;
mod redis;
mod signing;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use self::redis::RedisStore;

/// Why a store call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached or stopped answering (connect/read timeout, refused,
    /// reset), is marked down after such a failure, refused the call (out of memory, wrong
    /// password, read-only replica), or its URL or options are unusable.
    Unavailable(String),
    /// An entry was found but is not trustworthy: unsigned when a key is set, bad signature,
    /// truncated, a chunk of the wrong size, not a Cellar entry, or bigger than the limit.
    /// The caller recomputes. Also what `put` says of a value bigger than the limit, and
    /// every call of a key holding a NUL byte (the store reserves it for its own keys).
    Rejected(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "shared cache store unavailable: {why}"),
            StoreError::Rejected(why) => write!(f, "shared cache entry rejected: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A shared tier: bytes by key with expiry, shared by processes and machines.
pub trait SharedStore: Send + Sync {
    /// `redis://127.0.0.1:6379/0` (no password shown), for the panel and warnings.
    fn describe(&self) -> String;
    /// The value under `key` (verified, reassembled from chunks); `Ok(None)` when absent or
    /// expired, or when Redis evicted or expired one of its chunks before its header.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`, expiring after `ttl` (none: no expiry).
    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;
    /// Removes `key`'s entry. Returns whether there was one.
    fn remove(&self, key: &str) -> Result<bool, StoreError>;
    /// Every entry whose key starts with `prefix`: key, size in bytes, time left before it
    /// expires. Sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<StoredEntry>, StoreError>;
    /// Removes every entry whose key starts with `prefix`; returns how many.
    fn clear(&self, prefix: &str) -> Result<usize, StoreError>;
    /// Compute-once across processes: takes a short lock named after `key` (SET NX PX with a
    /// random token); `Some` if this process got it. The lock expires by itself after `hold`.
    fn try_lock(&self, key: &str, hold: Duration) -> Result<Option<StoreLock>, StoreError>;
    /// Releases a lock this process holds (only if the token still matches: a lock that
    /// expired and was taken by someone else stays theirs).
    fn unlock(&self, lock: StoreLock) -> Result<(), StoreError>;
    /// Whether the store answered its last call (false after a failure until it answers
    /// again; true before the first call).
    fn healthy(&self) -> bool;
    /// Asks the store to answer now (PING), for a "test connection" button or a status check.
    fn ping(&self) -> Result<(), StoreError>;
}

/// One entry as [`SharedStore::list`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// The caller's key.
    pub key: String,
    /// Bytes of the value (as given to `put`; the header and chunking are not counted).
    pub bytes: u64,
    /// Time left before it expires; none when it never does.
    pub ttl_left: Option<Duration>,
}

/// A compute-once lock held by this process; give it back with [`SharedStore::unlock`].
#[derive(Debug, PartialEq, Eq)]
pub struct StoreLock {
    key: String,
    token: String,
}

impl StoreLock {
    /// The caller's key the lock is named after.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Settings of a store; [`StoreOptions::default`] is what [`open`] uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Longest wait to open a connection (DNS lookup, TCP connect, handshake). 1 s.
    pub connect_timeout: Duration,
    /// Longest wait for each read or write on a connection. 1 s.
    pub io_timeout: Duration,
    /// How long the store stays marked down after a failure (calls fail at once). 3 s.
    pub retry_after: Duration,
    /// Values longer than this are split into chunks of this size. 64 MiB; at most
    /// [`format::MAX_CHUNK_SIZE`].
    pub chunk_size: u64,
    /// The largest value stored or read; a header claiming more is rejected before anything
    /// is allocated. 4 GiB.
    pub max_entry: u64,
    /// Connections kept open between calls (more are opened while calls overlap). 4.
    pub max_idle: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            retry_after: Duration::from_secs(3),
            chunk_size: 64 << 20,
            max_entry: 4 << 30,
            max_idle: 4,
        }
    }
}

impl StoreOptions {
    /// Refuses settings the store cannot work with.
    fn check(&self) -> Result<(), StoreError> {
        let bad = |what: String| Err(StoreError::Unavailable(format!("store options: {what}")));
        if self.connect_timeout.is_zero() || self.io_timeout.is_zero() {
            return bad("timeouts must be longer than zero".into());
        }
        if self.chunk_size == 0 || self.chunk_size > format::MAX_CHUNK_SIZE {
            return bad(format!(
                "chunk size {} is not between 1 and {} bytes",
                self.chunk_size,
                format::MAX_CHUNK_SIZE
            ));
        }
        if self.max_entry == 0 {
            return bad("the entry size limit must be at least 1 byte".into());
        }
        Ok(())
    }
}

/// Opens a store from a URL: `redis://[[user]:password@]host:port/db`, `rediss://` (TLS,
/// server certificate checked against the system's roots) or `unix:///path/to/socket?db=N`.
/// `secret` is the team key (from `CELLAR_CACHE_KEY`, read by the caller) used to sign
/// entries with HMAC-SHA256. Nothing is connected yet: the first call connects, so an
/// unreachable store shows as [`StoreError::Unavailable`] from that call.
pub fn open(url: &str, secret: Option<&[u8]>) -> Result<Arc<dyn SharedStore>, StoreError> {
    open_with(url, secret, StoreOptions::default())
}

/// [`open`] with settings other than the defaults (shorter timeouts, small chunks in tests).
pub fn open_with(
    url: &str,
    secret: Option<&[u8]>,
    options: StoreOptions,
) -> Result<Arc<dyn SharedStore>, StoreError> {
    Ok(Arc::new(RedisStore::open(url, secret, options)?))
}
