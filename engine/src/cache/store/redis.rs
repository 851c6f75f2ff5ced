//! [`SharedStore`] on Redis: the format, keys, signing, pool and breaker put together.
//!
//! Every call goes through [`RedisStore::call`]: the breaker first (fail fast while the store
//! is marked down), then one connection from the pool for the whole operation, then the
//! outcome is reported to the breaker. Writes store the chunks first and the header last, all
//! with the same expiry, so a reader that finds a header finds a complete write (or, if Redis
//! evicted a chunk since, a plain miss).

use std::collections::HashSet;
use std::time::Duration;

use redis::{Client, ConnectionLike, RedisResult};
use redis::{Value, cmd, from_redis_value, pipe};
use sha2::Digest;

use super::address;
use super::breaker::Breaker;
use super::fault;
use super::format::{HEADER_LEN, Header};
use super::keys::{self, KeyKind};
use super::pool::{self, Pool};
use super::signing::Sealer;
use super::{SharedStore, StoreError, StoreLock, StoreOptions, StoredEntry};

/// Deletes a lock only while it still holds this process's token (atomic on the server).
const UNLOCK_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                             return redis.call('del', KEYS[1]) else return 0 end";
/// Keys asked per SCAN step (a hint to Redis; each step stays short).
const SCAN_COUNT: usize = 1000;
/// Keys per pipelined or multi-key command, so no single reply grows without bound.
const BATCH: usize = 500;
/// The longest expiry given to Redis (100 years): a longer ttl means "practically never",
/// and Redis refuses expiries that overflow its clock.
const MAX_TTL_MS: u128 = 100 * 365 * 24 * 3600 * 1000;
/// Chunk keys named for cleanup at most; a header claiming more is not trusted that far.
const MAX_CLEANUP_CHUNKS: u32 = 1 << 20;

/// A shared store on one Redis server (see the module docs of [`super`]).
pub struct RedisStore {
    described: String,
    options: StoreOptions,
    pool: Pool,
    breaker: Breaker,
    sealer: Sealer,
}

impl RedisStore {
    /// Checks the URL and the options; connects on the first call.
    pub fn open(
        url: &str,
        secret: Option<&[u8]>,
        options: StoreOptions,
    ) -> Result<RedisStore, StoreError> {
        options.check()?;
        if secret.is_some_and(<[u8]>::is_empty) {
            return Err(StoreError::Unavailable(
                "CELLAR_CACHE_KEY is set but empty: set it to a long random string the team \
                 shares, or unset it to store unsigned entries"
                    .into(),
            ));
        }
        let client = Client::open(url).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot use the store URL {} ({e}): expected \
                 redis://[:password@]host:port/db, rediss://... or unix:///path",
                address::redact(url)
            ))
        })?;
        let described = address::describe(client.get_connection_info());
        let probe_grace = options.connect_timeout + options.io_timeout * 2 + Duration::from_secs(1);
        Ok(RedisStore {
            described,
            pool: Pool::new(
                client,
                options.connect_timeout,
                options.io_timeout,
                options.max_idle,
            ),
            breaker: Breaker::new(options.retry_after, probe_grace),
            sealer: Sealer::new(secret),
            options,
        })
    }

    /// Runs one operation on one connection, behind the breaker.
    fn call<T>(
        &self,
        work: impl FnMut(&mut redis::Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        if let Err(why) = self.breaker.admit() {
            return Err(StoreError::Unavailable(format!(
                "{} is marked down: {why}",
                self.described
            )));
        }
        match self.pool.run(work) {
            Ok(value) => {
                self.breaker.success();
                Ok(value)
            }
            Err(e) => {
                let fault = fault::classify(&e, &self.described, &self.options);
                if fault.trips {
                    self.breaker.failure(&fault.reason);
                } else {
                    // It answered, if only with an error.
                    self.breaker.success();
                }
                Err(fault.error)
            }
        }
    }

    fn rejected(&self, key: &str, why: &str) -> StoreError {
        StoreError::Rejected(format!(
            "{}: the entry {key:?} is not used: {why}; it will be recomputed",
            self.described
        ))
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        keys::check(key).map_err(|why| StoreError::Rejected(format!("{}: {why}", self.described)))
    }

    /// The chunk keys of an old header, for cleanup; none for an inline entry or one that
    /// claims an unbelievable number of chunks.
    fn chunk_keys(key: &str, header: &Header) -> Vec<String> {
        if header.chunk_count > MAX_CLEANUP_CHUNKS {
            return Vec::new();
        }
        (0..header.chunk_count)
            .map(|i| keys::chunk(key, &header.write_id, i))
            .collect()
    }

    /// Writes one entry: the chunks, then the header (`stored`: with the payload if inline).
    fn write(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
        header: &Header,
        value: &[u8],
        stored: &[u8],
        px: Option<u64>,
    ) -> RedisResult<()> {
        if !header.is_inline() {
            let chunks = value.chunks(self.options.chunk_size as usize);
            for (index, chunk) in (0u32..).zip(chunks) {
                set(c, &keys::chunk(key, &header.write_id, index), chunk, px)?;
            }
        }
        // The header last: until it is written, readers see the previous entry or none.
        set(c, &keys::entry(key), stored, px)
    }

    /// The header now stored under `entry_key`, if it is one of ours.
    fn old_header(
        &self,
        c: &mut dyn ConnectionLike,
        entry_key: &str,
    ) -> RedisResult<Option<Header>> {
        let head: RedisResult<Vec<u8>> = cmd("GETRANGE")
            .arg(entry_key)
            .arg(0)
            .arg(HEADER_LEN - 1)
            .query(c);
        match head {
            Ok(head) => Ok(Header::decode(&head, self.options.max_entry).ok()),
            // Something else under our name (WRONGTYPE): nothing of ours to clean up.
            Err(e) if pool::is_server_reply(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads and checks one entry. The outer error is Redis'; the inner one a rejection.
    fn read(
        &self,
        c: &mut dyn ConnectionLike,
        key: &str,
    ) -> RedisResult<Result<Option<Vec<u8>>, String>> {
        let value: Option<Vec<u8>> = cmd("GET").arg(keys::entry(key)).query(c)?;
        let Some(mut value) = value else {
            return Ok(Ok(None));
        };
        let header = match Header::decode(&value, self.options.max_entry) {
            Ok(header) => header,
            Err(why) => return Ok(Err(why)),
        };
        if let Err(why) = header
            .check_value_len(value.len())
            .and_then(|()| self.sealer.precheck(&header))
        {
            return Ok(Err(why));
        }
        let mut hasher = Sealer::digest_start(&header.fields(), key);
        let payload = if header.is_inline() {
            hasher.update(&value[HEADER_LEN..]);
            value.drain(..HEADER_LEN);
            value
        } else {
            // Grown chunk by chunk: the header's total is trusted only as a bound (checked
            // against the limit), never allocated up front.
            let mut payload = Vec::new();
            for index in 0..header.chunk_count {
                let chunk: Option<Vec<u8>> = cmd("GET")
                    .arg(keys::chunk(key, &header.write_id, index))
                    .query(c)?;
                // Evicted or expired before its header: a plain miss, as if the whole entry
                // had gone.
                let Some(chunk) = chunk else {
                    return Ok(Ok(None));
                };
                let expected = header.chunk_len(index);
                if chunk.len() as u64 != expected {
                    return Ok(Err(format!(
                        "chunk {index} has {} bytes, its header says {expected}",
                        chunk.len()
                    )));
                }
                hasher.update(&chunk);
                if index == 0 {
                    payload = chunk;
                } else {
                    if index == 1 {
                        // Two chunks of the right size in: room for the rest at once rather
                        // than doubling (and copying) as it grows.
                        let rest = header.total_len - payload.len() as u64;
                        payload.reserve_exact(usize::try_from(rest).unwrap_or(usize::MAX));
                    }
                    payload.extend_from_slice(&chunk);
                }
            }
            payload
        };
        let digest = Sealer::digest_finish(hasher);
        Ok(self.sealer.verify(&header, &digest).map(|()| Some(payload)))
    }
}

impl SharedStore for RedisStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_key(key)?;
        self.call(|c| self.read(c, key))?
            .map_err(|why| self.rejected(key, &why))
    }

    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.check_key(key)?;
        let total = value.len() as u64;
        if total > self.options.max_entry {
            return Err(StoreError::Rejected(format!(
                "{}: not storing {key:?}: {total} bytes is more than the limit of {} bytes",
                self.described, self.options.max_entry
            )));
        }
        let mut header = Header::plan(
            total,
            self.options.chunk_size,
            self.sealer.signs(),
            keys::fresh_id(),
        );
        let mut hasher = Sealer::digest_start(&header.fields(), key);
        hasher.update(value);
        header.digest = Sealer::digest_finish(hasher);
        header.tag = self.sealer.tag(&header.digest);
        let mut stored = header.encode().to_vec();
        if header.is_inline() {
            stored.extend_from_slice(value);
        }
        let entry_key = keys::entry(key);
        let px = ttl.map(ttl_ms);
        self.call(|c| {
            let old = self.old_header(c, &entry_key)?;
            if let Err(e) = self.write(c, key, &header, value, &stored, px) {
                // Refused midway (Redis full): no header will ever name the chunks already
                // written, so drop them now rather than leave them to fill Redis for good.
                if pool::is_server_reply(&e) {
                    let _ = unlink(c, &Self::chunk_keys(key, &header));
                }
                return Err(e);
            }
            // The chunks the previous header named are nobody's now (without a ttl they
            // would stay forever). A reader still on them sees a miss.
            if let Some(old) = old.filter(|old| old.write_id != header.write_id) {
                unlink(c, &Self::chunk_keys(key, &old))?;
            }
            Ok(())
        })
    }

    fn remove(&self, key: &str) -> Result<bool, StoreError> {
        self.check_key(key)?;
        let entry_key = keys::entry(key);
        self.call(|c| {
            let old = self.old_header(c, &entry_key)?;
            let removed = unlink(c, std::slice::from_ref(&entry_key))?;
            if let Some(old) = old {
                unlink(c, &Self::chunk_keys(key, &old))?;
            }
            Ok(removed > 0)
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<StoredEntry>, StoreError> {
        let pattern = keys::scan_pattern(prefix);
        self.call(|c| {
            let raw = scan(c, &pattern)?;
            let mut found: Vec<(&str, &[u8])> = raw
                .iter()
                .filter_map(|k| match keys::classify(k) {
                    KeyKind::Entry(name) => Some((name, k.as_slice())),
                    _ => None,
                })
                .collect();
            found.sort_unstable();
            let mut out = Vec::with_capacity(found.len());
            for batch in found.chunks(BATCH) {
                let mut p = pipe();
                // One odd key (another program's value under cellar:) must not fail the list.
                p.ignore_errors();
                for (_, raw_key) in batch {
                    p.cmd("GETRANGE").arg(*raw_key).arg(0).arg(HEADER_LEN - 1);
                    p.cmd("PTTL").arg(*raw_key);
                    p.cmd("STRLEN").arg(*raw_key);
                }
                let replies: Vec<Value> = p.query(c)?;
                let mut replies = replies.into_iter();
                for (name, _) in batch {
                    let (Some(head), Some(pttl), Some(len)) =
                        (replies.next(), replies.next(), replies.next())
                    else {
                        break;
                    };
                    let pttl: i64 = from_redis_value(pttl).unwrap_or(-2);
                    if pttl == -2 {
                        continue; // gone since the scan
                    }
                    let head: Vec<u8> = from_redis_value(head).unwrap_or_default();
                    let bytes = match Header::decode(&head, u64::MAX) {
                        Ok(header) => header.total_len,
                        Err(_) => from_redis_value(len).unwrap_or(0),
                    };
                    out.push(StoredEntry {
                        key: (*name).to_owned(),
                        bytes,
                        ttl_left: u64::try_from(pttl).ok().map(Duration::from_millis),
                    });
                }
            }
            Ok(out)
        })
    }

    fn clear(&self, prefix: &str) -> Result<usize, StoreError> {
        let pattern = keys::scan_pattern(prefix);
        self.call(|c| {
            let raw = scan(c, &pattern)?;
            let mut entries = Vec::new();
            let mut chunks = Vec::new();
            for k in &raw {
                match keys::classify(k) {
                    KeyKind::Entry(_) => entries.push(k.as_slice()),
                    KeyKind::Chunk => chunks.push(k.as_slice()),
                    // A lock guards a computation in flight and expires by itself.
                    KeyKind::Lock | KeyKind::Foreign => {}
                }
            }
            // Headers first: a reader then finds no entry rather than one missing chunks.
            let removed = unlink(c, &entries)?;
            unlink(c, &chunks)?;
            Ok(removed as usize)
        })
    }

    fn try_lock(&self, key: &str, hold: Duration) -> Result<Option<StoreLock>, StoreError> {
        self.check_key(key)?;
        let lock_key = keys::lock(key);
        let token = keys::hex(&keys::fresh_id());
        let got = self.call(|c| {
            let set: Option<String> = cmd("SET")
                .arg(&lock_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms(hold))
                .query(c)?;
            if set.is_some() {
                return Ok(true);
            }
            // Ours already if a first try set it but its reply was lost with the connection.
            let holder: Option<String> = cmd("GET").arg(&lock_key).query(c)?;
            Ok(holder.as_deref() == Some(token.as_str()))
        })?;
        Ok(got.then(|| StoreLock {
            key: key.to_owned(),
            token,
        }))
    }

    fn unlock(&self, lock: StoreLock) -> Result<(), StoreError> {
        let lock_key = keys::lock(&lock.key);
        self.call(|c| {
            let _released: i64 = cmd("EVAL")
                .arg(UNLOCK_SCRIPT)
                .arg(1)
                .arg(&lock_key)
                .arg(&lock.token)
                .query(c)?;
            Ok(())
        })
    }

    fn healthy(&self) -> bool {
        self.breaker.healthy()
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.call(|c| cmd("PING").query::<String>(c).map(drop))
    }
}

/// SET with an optional expiry in milliseconds.
fn set(c: &mut dyn ConnectionLike, key: &str, value: &[u8], px: Option<u64>) -> RedisResult<()> {
    let mut set = cmd("SET");
    set.arg(key).arg(value);
    if let Some(ms) = px {
        set.arg("PX").arg(ms);
    }
    set.query::<()>(c)
}

/// Deletes keys in batches (UNLINK frees big values off Redis' main thread); how many were.
fn unlink<K: redis::ToRedisArgs>(c: &mut dyn ConnectionLike, keys: &[K]) -> RedisResult<u64> {
    let mut removed = 0;
    for batch in keys.chunks(BATCH) {
        removed += cmd("UNLINK").arg(batch).query::<u64>(c)?;
    }
    Ok(removed)
}

/// Every key matching `pattern`, by SCAN (never KEYS, which blocks Redis on a big database).
fn scan(c: &mut dyn ConnectionLike, pattern: &str) -> RedisResult<Vec<Vec<u8>>> {
    let mut seen = HashSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(c)?;
        // SCAN may return a key twice.
        seen.extend(batch);
        if next == 0 {
            return Ok(seen.into_iter().collect());
        }
        cursor = next;
    }
}

/// A ttl as Redis milliseconds: rounded up (a ttl never expires early), at least 1 (Redis
/// refuses 0), at most [`MAX_TTL_MS`].
fn ttl_ms(ttl: Duration) -> u64 {
    ttl.as_nanos().div_ceil(1_000_000).clamp(1, MAX_TTL_MS) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_described_without_credentials() {
        let s = RedisStore::open(
            "redis://:hunter2@127.0.0.1:6390/2",
            None,
            StoreOptions::default(),
        )
        .unwrap();
        assert_eq!(s.describe(), "redis://127.0.0.1:6390/2");
        let err = RedisStore::open("http://:hunter2@h/0", None, StoreOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            !err.contains("hunter2") && err.contains("redis://"),
            "{err}"
        );
        assert!(RedisStore::open("redis://h/0", Some(b""), StoreOptions::default()).is_err());
    }

    #[test]
    fn ttl_rounding() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS as u64);
    }
}
