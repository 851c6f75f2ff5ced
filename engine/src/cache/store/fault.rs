//! What a Redis error means: a message the user can act on, and whether it marks the store
//! down (the breaker) or was only an answer the server gave (the store is up).

use redis::RedisError;

use super::{StoreError, StoreOptions};

/// A Redis error, judged.
pub struct Fault {
    /// What the caller gets.
    pub error: StoreError,
    /// The short reason the breaker repeats while the store is marked down.
    pub reason: String,
    /// Whether the store is marked down for [`StoreOptions::retry_after`].
    pub trips: bool,
}

/// What `e` means to the caller of the store described as `described`.
pub fn classify(e: &RedisError, described: &str, options: &StoreOptions) -> Fault {
    let later = format!(
        "Cellar goes on with its local cache and tries the store again in {:.1} s",
        options.retry_after.as_secs_f64()
    );
    let down = |reason: String| Fault {
        error: StoreError::Unavailable(format!("{}: {reason}; {later}", described)),
        reason,
        trips: true,
    };
    let code = e.code().unwrap_or("");
    match code {
        "WRONGTYPE" => {
            let reason = "a key under cellar: holds something that is not a Cellar entry \
                          (written by another program)"
                .to_string();
            return Fault {
                error: StoreError::Rejected(format!("{}: {reason}", described)),
                reason,
                trips: false,
            };
        }
        "OOM" => {
            let reason = "Redis is out of memory and refuses writes: give it a \
                          maxmemory-policy such as allkeys-lru so old entries make room"
                .to_string();
            return Fault {
                error: StoreError::Unavailable(format!("{}: {reason}", described)),
                reason,
                trips: false,
            };
        }
        "NOAUTH" | "WRONGPASS" => {
            return down(
                "authentication failed: check the user and password in the store URL".into(),
            );
        }
        "LOADING" => return down("Redis is still loading its data set".into()),
        "READONLY" => {
            return down(
                "this Redis is a read-only replica: point the store URL at the primary".into(),
            );
        }
        "NOPERM" => {
            return down(format!(
                "the Redis user may not run a command Cellar needs ({e}): allow GET SET \
                 GETRANGE STRLEN PTTL UNLINK SCAN EVAL PING on keys cellar:*"
            ));
        }
        _ => {}
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return down(format!("authentication failed ({e}): check the store URL"));
    }
    if e.is_connection_refusal() {
        return down("connection refused (is redis-server running there?)".into());
    }
    if e.is_timeout() {
        // The OS's words for a timeout ("Resource temporarily unavailable") help nobody.
        let waited = options.io_timeout.max(options.connect_timeout);
        return down(format!(
            "no answer within {:.1} s (the server is stuck or overloaded, or is not a \
             Redis server; check redis:// against rediss://)",
            waited.as_secs_f64()
        ));
    }
    let text = e.to_string();
    if text.contains("certificate") {
        return down(format!(
            "TLS: {text} (the server's certificate must be signed by a CA this machine \
             trusts: add it to the system's store or point SSL_CERT_FILE at it)"
        ));
    }
    if e.is_connection_dropped() {
        return down(format!("the connection was lost ({e})"));
    }
    down(text)
}
