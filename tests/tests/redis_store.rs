//! The shared store against a real Redis: each test starts its own `redis-server` on a free
//! loopback port (no persistence) and stops it when done.
//!
//! Timing bounds are generous on purpose: what is asserted is that nothing hangs (a fault
//! answers within seconds, the breaker at once), not how fast a machine is.

use std::net::TcpListener;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cellar_engine::cache::store::format::{HEADER_LEN, Header, MAX_CHUNK_SIZE};
use cellar_engine::cache::store::{self, SharedStore, StoreError, StoreOptions};
use cellar_tests::redis::{RedisServer, free_port};

const SECRET: &[u8] = b"team secret for tests";

fn options(chunk_size: u64) -> StoreOptions {
    StoreOptions {
        chunk_size,
        retry_after: Duration::from_millis(800),
        ..StoreOptions::default()
    }
}

fn open(server: &RedisServer, secret: Option<&[u8]>) -> Arc<dyn SharedStore> {
    store::open_with(&server.url(), secret, options(1000)).unwrap()
}

/// Bytes that differ from chunk to chunk, so a misplaced chunk shows.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i / 1000) as u8)
        .collect()
}

fn raw_keys(conn: &mut redis::Connection, pattern: &str) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(pattern).query(conn).unwrap();
    keys.sort();
    keys
}

fn chunk_keys(conn: &mut redis::Connection, key: &str) -> Vec<Vec<u8>> {
    raw_keys(conn, &format!("cellar:{key}\0c*"))
}

fn is_rejected<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Rejected(why)) => why,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Unavailable(why)) => why,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Polls `done` every 20 ms until it is true or `limit` has passed.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn chunked_roundtrip_with_ttl() {
    let server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    let mut raw = server.raw();
    assert_eq!(s.describe(), server.url());

    let big = payload(10_500, 1);
    let ttl = Duration::from_millis(1500);
    s.put("big", &big, Some(ttl)).unwrap();
    assert_eq!(s.get("big").unwrap().as_deref(), Some(&big[..]));
    // 11 chunks of 1000 bytes, header under the caller's key, all expiring.
    assert_eq!(chunk_keys(&mut raw, "big").len(), 11);
    for key in raw_keys(&mut raw, "cellar:big*") {
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut raw).unwrap();
        assert!(pttl > 0 && pttl <= 1500, "{pttl}");
    }
    let listed = s.list("").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].bytes), ("big", 10_500));
    assert!(listed[0].ttl_left.is_some_and(|t| t <= ttl));

    // Small, empty and ttl-less values stay inline.
    s.put("small", b"hello", None).unwrap();
    s.put("empty", b"", None).unwrap();
    assert_eq!(s.get("small").unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(s.get("empty").unwrap().as_deref(), Some(&b""[..]));
    let small = s.list("small").unwrap();
    assert_eq!((small[0].bytes, small[0].ttl_left), (5, None));

    // Overwriting a chunked entry drops the old write's chunks.
    let other = payload(4_200, 2);
    s.put("small", &other, None).unwrap();
    assert_eq!(chunk_keys(&mut raw, "small").len(), 5);
    s.put("small", b"short again", None).unwrap();
    assert_eq!(chunk_keys(&mut raw, "small").len(), 0);
    assert_eq!(
        s.get("small").unwrap().as_deref(),
        Some(&b"short again"[..])
    );

    // The ttl is Redis' expiry: the entry goes by itself.
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || s.get("big").unwrap().is_none()),
        "the entry outlived its ttl"
    );
    eprintln!("ttl 1.5 s: gone after {:?} more", start.elapsed());
    // Every chunk expires by itself too. Each key's expiry counts from its own SET, so under
    // load a chunk may outlive the header by a few milliseconds: waited for, within bounds.
    assert!(
        wait_until(Duration::from_secs(5), || raw_keys(&mut raw, "cellar:big*")
            .is_empty()),
        "chunks outlived their ttl: {:?}",
        raw_keys(&mut raw, "cellar:big*")
    );
}

#[test]
fn absent_key_is_none() {
    let server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    assert_eq!(s.get("nothing here").unwrap(), None);
    assert!(!s.remove("nothing here").unwrap());
    assert!(s.healthy());
    s.ping().unwrap();
}

#[test]
fn tampered_entries_are_rejected() {
    let server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    let mut raw = server.raw();

    // A byte of a chunk.
    s.put("chunked", &payload(3_500, 3), None).unwrap();
    let chunk = chunk_keys(&mut raw, "chunked")[1].clone();
    let _: () = redis::cmd("SETRANGE")
        .arg(&chunk)
        .arg(10)
        .arg(b"\xff")
        .query(&mut raw)
        .unwrap();
    let why = is_rejected(s.get("chunked"));
    assert!(why.contains("checksum"), "{why}");

    // A byte of an inline payload, and each field of a header.
    for offset in [HEADER_LEN + 3, 7, 8, 30, 50, 90] {
        s.put("inline", b"a value worth protecting", None).unwrap();
        let before: Vec<u8> = redis::cmd("GETRANGE")
            .arg("cellar:inline")
            .arg(offset)
            .arg(offset)
            .query(&mut raw)
            .unwrap();
        let _: () = redis::cmd("SETRANGE")
            .arg("cellar:inline")
            .arg(offset)
            .arg(&[before[0] ^ 0x01][..])
            .query(&mut raw)
            .unwrap();
        let why = is_rejected(s.get("inline"));
        eprintln!("byte {offset} flipped: {why}");
    }

    // A whole valid entry moved under another key.
    s.put("original", b"value of original", None).unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("cellar:original")
        .arg("cellar:impostor")
        .query(&mut raw)
        .unwrap();
    is_rejected(s.get("impostor"));

    // Another team key, and no key (signed entries stay readable, by their checksum).
    s.put("signed", &payload(2_500, 4), None).unwrap();
    let other = store::open_with(&server.url(), Some(b"other team"), options(1000)).unwrap();
    assert!(is_rejected(other.get("signed")).contains("signature"));
    let keyless = open(&server, None);
    assert_eq!(keyless.get("signed").unwrap(), Some(payload(2_500, 4)));
    // A rejection is an answer: the store stays healthy.
    assert!(s.healthy());
}

#[test]
fn unsigned_entry_is_rejected_when_a_key_is_set() {
    let server = RedisServer::start();
    let keyless = open(&server, None);
    let signed = open(&server, Some(SECRET));
    keyless.put("u", &payload(2_500, 5), None).unwrap();
    keyless.put("v", b"small", None).unwrap();
    assert_eq!(keyless.get("u").unwrap(), Some(payload(2_500, 5)));
    assert!(is_rejected(signed.get("u")).contains("CELLAR_CACHE_KEY"));
    assert!(is_rejected(signed.get("v")).contains("unsigned"));
}

#[test]
fn hostile_headers_are_rejected_before_allocating() {
    let server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    let mut raw = server.raw();
    let set = |raw: &mut redis::Connection, key: &str, value: &[u8]| {
        let _: () = redis::cmd("SET").arg(key).arg(value).query(raw).unwrap();
    };

    // 2^60 bytes in 256 MiB chunks, with a chunk count that even agrees.
    let mut h = Header::plan(1 << 60, MAX_CHUNK_SIZE, true, [9; 16]);
    h.chunk_count = u32::MAX;
    set(&mut raw, "cellar:huge", &h.encode());
    assert!(is_rejected(s.get("huge")).contains("limit"));
    // 2^60 bytes said to be inline.
    let h = Header::plan(1 << 60, u64::MAX, true, [9; 16]);
    set(&mut raw, "cellar:huge-inline", &h.encode());
    assert!(is_rejected(s.get("huge-inline")).contains("limit"));
    // Within the limit, but the chunk count does not fit the length.
    let mut h = Header::plan(5_000, 1000, true, [9; 16]);
    h.chunk_count = 2;
    set(&mut raw, "cellar:miscounted", &h.encode());
    is_rejected(s.get("miscounted"));
    // Not an entry at all; and another program's hash under our prefix.
    set(&mut raw, "cellar:garbage", b"hello");
    is_rejected(s.get("garbage"));
    let _: () = redis::cmd("HSET")
        .arg("cellar:hash")
        .arg("f")
        .arg("v")
        .query(&mut raw)
        .unwrap();
    is_rejected(s.get("hash"));
    // None of it breaks a listing.
    assert_eq!(s.list("").unwrap().len(), 5);

    // The limit is settable, for reading and writing.
    let limited = store::open_with(
        &server.url(),
        Some(SECRET),
        StoreOptions {
            max_entry: 1000,
            ..options(1000)
        },
    )
    .unwrap();
    s.put("5k", &payload(5_000, 6), None).unwrap();
    assert!(is_rejected(limited.get("5k")).contains("limit"));
    is_rejected(limited.put("5k", &payload(5_000, 6), None));
}

#[test]
fn missing_or_short_chunk() {
    let server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    let mut raw = server.raw();

    // Evicted (or expired) before its header: a plain miss.
    s.put("evicted", &payload(4_500, 7), None).unwrap();
    let chunk = chunk_keys(&mut raw, "evicted")[2].clone();
    let _: () = redis::cmd("DEL").arg(&chunk).query(&mut raw).unwrap();
    assert_eq!(s.get("evicted").unwrap(), None);

    // Truncated: rejected.
    s.put("short", &payload(4_500, 8), None).unwrap();
    let chunk = chunk_keys(&mut raw, "short")[0].clone();
    let _: () = redis::cmd("SET")
        .arg(&chunk)
        .arg(&b"too short"[..])
        .query(&mut raw)
        .unwrap();
    assert!(is_rejected(s.get("short")).contains("chunk"));

    // A write whose header never came (the writer died after its chunks) is not there.
    let _: () = redis::cmd("DEL")
        .arg("cellar:short")
        .query(&mut raw)
        .unwrap();
    assert_eq!(s.get("short").unwrap(), None);
}

#[test]
fn killed_redis_is_unavailable_then_recovers() {
    let mut server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    s.put("k", b"before", None).unwrap();
    assert!(s.healthy());

    server.kill();
    let start = Instant::now();
    let why = unavailable(s.get("k"));
    let first = start.elapsed();
    assert!(
        first < Duration::from_secs(3),
        "first failure took {first:?}"
    );
    assert!(!s.healthy());
    eprintln!("killed: first call failed in {first:?}: {why}");

    // The breaker: the next calls fail without touching the network.
    let start = Instant::now();
    let why = unavailable(s.put("k", b"x", None));
    unavailable(s.list(""));
    let fast = start.elapsed();
    assert!(fast < Duration::from_millis(500), "breaker took {fast:?}");
    assert!(why.contains("marked down"), "{why}");
    eprintln!("killed: breaker answered in {fast:?}: {why}");

    // A new server on the same port: after the pause the store works again by itself.
    server.restart();
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || s.get("k").is_ok()),
        "the store did not come back"
    );
    eprintln!("restarted: answering again after {:?}", start.elapsed());
    assert!(s.healthy());
    assert_eq!(s.get("k").unwrap(), None, "the new server is empty");
    s.put("k", b"after", None).unwrap();
    assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"after"[..]));
}

#[test]
fn restart_between_calls_is_transparent() {
    let mut server = RedisServer::start();
    let s = open(&server, None);
    s.put("k", b"v", None).unwrap();
    // The pooled connection is dead after this; the next call reconnects on its own.
    server.restart();
    assert_eq!(s.get("k").unwrap(), None);
    assert!(s.healthy());
}

#[test]
fn hung_redis_times_out() {
    let server = RedisServer::start();
    let s = open(&server, None);
    s.put("k", b"v", None).unwrap();

    server.signal("-STOP");
    let start = Instant::now();
    let why = unavailable(s.get("k"));
    let first = start.elapsed();
    assert!(first < Duration::from_secs(3), "hung server took {first:?}");
    eprintln!("stopped: first call failed in {first:?}: {why}");
    let start = Instant::now();
    unavailable(s.get("k"));
    assert!(start.elapsed() < Duration::from_millis(500));

    server.signal("-CONT");
    assert!(
        wait_until(Duration::from_secs(10), || s.get("k").is_ok()),
        "the store did not come back"
    );
    assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn silent_listener_times_out() {
    // Accepts TCP connections (the kernel does) and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = store::open(&format!("redis://127.0.0.1:{port}/0"), None).unwrap();
    let start = Instant::now();
    let why = unavailable(s.get("k"));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "silent server took {took:?}");
    eprintln!("silent listener: failed in {took:?}: {why}");
    drop(listener);
}

#[test]
fn unreachable_at_open() {
    let port = free_port();
    let start = Instant::now();
    let s = store::open(&format!("redis://:pw@127.0.0.1:{port}/0"), Some(SECRET)).unwrap();
    assert_eq!(s.describe(), format!("redis://127.0.0.1:{port}/0"));
    let why = unavailable(s.get("k"));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "unreachable store took {took:?}"
    );
    assert!(why.contains("refused") && !why.contains("pw@"), "{why}");
    assert!(!s.healthy());
    let start = Instant::now();
    unavailable(s.put("k", b"v", None));
    assert!(start.elapsed() < Duration::from_millis(500));
    eprintln!(
        "unreachable: failed in {took:?}: {}",
        StoreError::Unavailable(why)
    );

    // A bad URL is a clear error at open, without its password.
    let err = store::open("localhost:6379", None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("redis://"), "{err}");

    // TLS against a plain-text server: fails, and promptly.
    let server = RedisServer::start();
    let tls = store::open(&format!("rediss://127.0.0.1:{}/0", server.port()), None).unwrap();
    let start = Instant::now();
    let why = unavailable(tls.get("k"));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "TLS to plain text took {took:?}"
    );
    eprintln!("rediss:// to a plain server: failed in {took:?}: {why}");
}

#[test]
fn racing_locks() {
    let server = RedisServer::start();
    let a = open(&server, None);
    let b = open(&server, None);

    for round in 0..20 {
        let key = format!("race {round}");
        let barrier = Arc::new(Barrier::new(2));
        let takers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|s| {
                let (barrier, key) = (barrier.clone(), key.clone());
                thread::spawn(move || {
                    barrier.wait();
                    s.try_lock(&key, Duration::from_secs(5)).unwrap()
                })
            })
            .collect();
        let won: Vec<_> = takers
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one process gets the lock"
        );
        assert_eq!(won[0].key(), key);
    }

    // A lock that expired and was taken by another stays the other's.
    let stale = a
        .try_lock("job", Duration::from_millis(200))
        .unwrap()
        .unwrap();
    let mut taken = None;
    assert!(wait_until(Duration::from_secs(5), || {
        taken = b.try_lock("job", Duration::from_secs(30)).unwrap();
        taken.is_some()
    }));
    a.unlock(stale).unwrap();
    assert!(a.try_lock("job", Duration::from_secs(5)).unwrap().is_none());
    b.unlock(taken.unwrap()).unwrap();
    let again = a.try_lock("job", Duration::from_secs(5)).unwrap();
    assert!(again.is_some());
    // Locks are not entries.
    assert!(a.list("").unwrap().is_empty());
}

#[test]
fn list_and_clear_by_prefix() {
    let server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    let mut raw = server.raw();
    for key in ["a:1", "a:2", "b:1", "q*1", "qx1"] {
        s.put(key, &payload(2_500, 9), Some(Duration::from_secs(60)))
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("other:x")
        .arg("theirs")
        .query(&mut raw)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("cellarx")
        .arg("theirs")
        .query(&mut raw)
        .unwrap();
    let held = s.try_lock("a:1", Duration::from_secs(60)).unwrap();
    assert!(held.is_some());

    let keys = |prefix: &str| -> Vec<String> {
        s.list(prefix).unwrap().into_iter().map(|e| e.key).collect()
    };
    assert_eq!(keys("a:"), ["a:1", "a:2"]);
    assert_eq!(keys("q*"), ["q*1"], "glob characters are literal");
    assert_eq!(keys(""), ["a:1", "a:2", "b:1", "q*1", "qx1"]);
    let a1 = &s.list("a:1").unwrap()[0];
    assert_eq!(a1.bytes, 2_500);
    assert!(a1.ttl_left.is_some_and(|t| t > Duration::from_secs(50)));

    assert!(s.remove("qx1").unwrap());
    assert!(!s.remove("qx1").unwrap());
    assert!(
        raw_keys(&mut raw, "cellar:qx1*").is_empty(),
        "chunks go with the entry"
    );

    assert_eq!(s.clear("a:").unwrap(), 2);
    assert_eq!(keys(""), ["b:1", "q*1"]);
    assert_eq!(s.clear("").unwrap(), 2);
    assert!(keys("").is_empty());
    // Only the held lock is left of Cellar's keys, and the other programs' keys are intact.
    assert_eq!(
        raw_keys(&mut raw, "cellar:*"),
        [b"cellar:a:1\0lock".to_vec()]
    );
    let theirs: Vec<Option<String>> = redis::cmd("MGET")
        .arg("other:x")
        .arg("cellarx")
        .query(&mut raw)
        .unwrap();
    assert_eq!(theirs, [Some("theirs".into()), Some("theirs".into())]);
}

#[test]
fn concurrent_writers_never_mix() {
    let server = RedisServer::start();
    let s = open(&server, Some(SECRET));
    let (a, b) = (vec![0xaa; 5_000], vec![0xbb; 7_300]);
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|value| {
            let s = s.clone();
            thread::spawn(move || {
                for _ in 0..40 {
                    s.put("shared", &value, None).unwrap();
                }
            })
        })
        .collect();
    let mut seen = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        // Whole values only: one write's or the other's, or a miss when a rewrite dropped
        // the chunks under the reader's feet.
        if let Some(v) = s.get("shared").unwrap() {
            assert!(v == a || v == b, "a mixed value of {} bytes", v.len());
            seen += 1;
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    eprintln!("concurrent writers: {seen} whole reads");
}

#[test]
fn evicted_entries_are_misses_and_a_full_redis_refuses_writes() {
    // allkeys-lru: Redis drops whatever it likes, chunks and headers alike. Readers see
    // whole values or misses, never an error.
    let server =
        RedisServer::start_with(&["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"]);
    // Chunks of 100 kB: the even entries are inline, the odd ones in two chunks.
    let s = store::open_with(&server.url(), Some(SECRET), options(100_000)).unwrap();
    let len = |i: u8| if i.is_multiple_of(2) { 50_000 } else { 150_000 };
    for i in 0..60u8 {
        s.put(&format!("e{i}"), &payload(len(i), i), None).unwrap();
    }
    let mut present = [0, 0];
    for i in 0..60u8 {
        if let Some(v) = s.get(&format!("e{i}")).unwrap() {
            assert_eq!(v, payload(len(i), i));
            present[usize::from(i % 2)] += 1;
        }
    }
    eprintln!(
        "allkeys-lru, 6 MB into 3 MB: {} of 30 inline and {} of 30 chunked entries whole, \
         the rest misses",
        present[0], present[1]
    );
    assert!(
        present[0] + present[1] < 60,
        "Redis should have evicted something"
    );
    assert!(present[0] > 0, "the latest entries should still be there");

    // noeviction: a full Redis refuses writes. That is an answer (reads go on, the store is
    // not marked down), and the refused write leaves no chunks behind.
    let server =
        RedisServer::start_with(&["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]);
    let s = open(&server, Some(SECRET));
    let mut raw = server.raw();
    s.put("first", b"fits", None).unwrap();
    let mut refused = None;
    for i in 0..40u8 {
        if let Err(e) = s.put(&format!("fill{i}"), &payload(300_000, i), None) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("a 3 MB Redis refuses 12 MB");
    let why = unavailable::<()>(Err(e));
    assert!(why.contains("out of memory"), "{why}");
    eprintln!("noeviction: write {i} refused: {why}");
    assert!(s.healthy());
    assert_eq!(s.get("first").unwrap().as_deref(), Some(&b"fits"[..]));
    assert!(chunk_keys(&mut raw, &format!("fill{i}")).is_empty());
}
