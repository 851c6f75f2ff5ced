//! The Redis keys this module writes, and the random ids that name writes and locks.
//!
//! Everything lives under `cellar:` followed by the caller's key, so clearing Cellar's
//! entries never touches another application's keys in the same database:
//!
//! ```text
//! cellar:<key>                       the entry: header (and the payload when inline)
//! cellar:<key>\0c<write id>:<n>      chunk n of the write that has that id
//! cellar:<key>\0lock                 the compute-once lock of <key>
//! ```
//!
//! The NUL byte marks the module's own sub-keys: callers' keys never contain one (they are
//! refused), so a listing tells entries from chunks and locks by that byte alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The prefix of every key this module writes.
pub const NAMESPACE: &str = "cellar:";
/// Separates a caller's key from the module's sub-keys (chunks, lock).
const SEP: char = '\0';

/// What a key found in Redis is to this module.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyKind<'a> {
    /// An entry; the caller's key.
    Entry(&'a str),
    /// A chunk of some entry.
    Chunk,
    /// A compute-once lock.
    Lock,
    /// Not one of this module's keys.
    Foreign,
}

/// Refuses a caller's key this layout cannot hold.
pub fn check(key: &str) -> Result<(), String> {
    if key.contains(SEP) {
        Err(format!(
            "the key {key:?} contains a NUL byte, which the store reserves for its own keys"
        ))
    } else {
        Ok(())
    }
}

/// The Redis key of `key`'s entry.
pub fn entry(key: &str) -> String {
    format!("{NAMESPACE}{key}")
}

/// The Redis key of chunk `index` of the write `write_id` of `key`.
pub fn chunk(key: &str, write_id: &[u8; 16], index: u32) -> String {
    format!("{NAMESPACE}{key}{SEP}c{}:{index}", hex(write_id))
}

/// The Redis key of `key`'s compute-once lock.
pub fn lock(key: &str) -> String {
    format!("{NAMESPACE}{key}{SEP}lock")
}

/// A SCAN MATCH pattern for every key under `prefix` (entries, chunks and locks).
pub fn scan_pattern(prefix: &str) -> String {
    let mut pattern = String::from(NAMESPACE);
    for c in prefix.chars() {
        // Glob characters in a caller's prefix are literal.
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// Tells what a key returned by SCAN is.
pub fn classify(raw: &[u8]) -> KeyKind<'_> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return KeyKind::Foreign;
    };
    let Some(rest) = text.strip_prefix(NAMESPACE) else {
        return KeyKind::Foreign;
    };
    match rest.split_once(SEP) {
        None => KeyKind::Entry(rest),
        Some((_, "lock")) => KeyKind::Lock,
        Some((_, sub)) if sub.starts_with('c') => KeyKind::Chunk,
        Some(_) => KeyKind::Foreign,
    }
}

/// A fresh random id (write ids, lock tokens). Unique across processes and machines: it
/// hashes a random number with the process id, the time and a counter, so neither a
/// badly seeded generator nor a forked process repeats one.
pub fn fresh_id() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(fastrand::u128(..).to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.update(nanos.to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds() {
        assert_eq!(entry("f:1"), "cellar:f:1");
        assert_eq!(classify(entry("f:1").as_bytes()), KeyKind::Entry("f:1"));
        assert_eq!(
            classify(chunk("f:1", &[0xab; 16], 3).as_bytes()),
            KeyKind::Chunk
        );
        assert_eq!(classify(lock("f:1").as_bytes()), KeyKind::Lock);
        assert_eq!(classify(b"session:42"), KeyKind::Foreign);
        assert_eq!(classify(b"cellar:\xff"), KeyKind::Foreign);
        assert!(check("a\0b").is_err());
        assert!(check("fn:abc123").is_ok());
        assert_ne!(fresh_id(), fresh_id());
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(scan_pattern(""), "cellar:*");
        assert_eq!(scan_pattern("a*[b]?\\"), "cellar:a\\*\\[b\\]\\?\\\\*");
    }
}
