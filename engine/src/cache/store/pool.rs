//! Connections to Redis: opened with a deadline, kept idle for the next call, and dropped
//! (with every idle sibling) when one breaks.
//!
//! Every connection has read and write timeouts, so no call waits longer than the timeout on
//! a Redis that stopped answering. Opening one runs on a helper thread with a deadline
//! because the client's own connect timeout covers the TCP connect but not the DNS lookup
//! before it (many seconds when the resolver is unreachable), and a silent server can make
//! its handshake wait once per reply.

use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Client, Connection, RedisError, RedisResult};

/// Idle connections to one Redis.
pub struct Pool {
    client: Client,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// A pool for `client`; nothing is connected yet.
    pub fn new(
        client: Client,
        connect_timeout: Duration,
        io_timeout: Duration,
        max_idle: usize,
    ) -> Pool {
        Pool {
            client,
            connect_timeout,
            io_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `work` on a connection. A connection that was idle may have died meanwhile (Redis
    /// restarted, an idle timeout): when it turns out dropped, `work` runs once more on a new
    /// connection, so a restart costs the caller nothing. A timeout is not retried (the
    /// server is there but slow, and a second wait would double the cost).
    pub fn run<T>(
        &self,
        mut work: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let reused = self.idle.lock().pop();
        if let Some(mut conn) = reused {
            let result = work(&mut conn);
            match self.finish(result, conn) {
                Err(e) if e.is_connection_dropped() && !e.is_timeout() => {}
                done => return done,
            }
        }
        let mut conn = self.connect()?;
        let result = work(&mut conn);
        self.finish(result, conn)
    }

    /// Keeps a connection that is still in a known state; drops the others.
    fn finish<T>(&self, result: RedisResult<T>, conn: Connection) -> RedisResult<T> {
        match &result {
            Ok(_) => self.keep(conn),
            // The server answered with an error: the reply was read whole, the connection
            // is fine.
            Err(e) if is_server_reply(e) => self.keep(conn),
            // Anything else (a timeout included: its late reply would be taken for the
            // answer to the next command) leaves the connection unusable. A broken connection
            // says its siblings, opened to the same server, are likely
            // broken too: drop them rather than fail on each in turn.
            Err(_) => self.idle.lock().clear(),
        }
        result
    }

    fn keep(&self, conn: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Opens a connection with the timeouts set, or fails within about the connect timeout.
    fn connect(&self) -> RedisResult<Connection> {
        let client = self.client.clone();
        let (connect_timeout, io_timeout) = (self.connect_timeout, self.io_timeout);
        let (tx, rx) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("cellar-store-connect".into())
            .spawn(move || {
                let result = client
                    .get_connection_with_timeout(connect_timeout)
                    .and_then(|conn| {
                        conn.set_read_timeout(Some(io_timeout))?;
                        conn.set_write_timeout(Some(io_timeout))?;
                        Ok(conn)
                    });
                // The caller may have given up waiting; then the connection is dropped here.
                let _ = tx.send(result);
            })
            .map_err(RedisError::from)?;
        // A little past the client's own timeout, so its more precise error wins the race.
        match rx.recv_timeout(connect_timeout + Duration::from_millis(200)) {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no connection within {:.1} s",
                    connect_timeout.as_secs_f64()
                ),
            ))),
        }
    }
}

/// Whether `e` is an error reply from the server (the connection itself is fine).
pub fn is_server_reply(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}
