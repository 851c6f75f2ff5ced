//! A `redis-server` of a test's own, on a free loopback port with no persistence, stopped
//! when the test ends. Tests of the shared store (here and the CLI's in `app/tests`) use it;
//! it panics with what to install when `redis-server` is missing, never skipping silently.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A `redis-server` of this test's own, killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    /// Starts a server with extra settings (`--maxmemory 2mb`...).
    pub fn start_with(settings: &[&str]) -> RedisServer {
        Self::spawn(free_port(), settings)
    }

    /// Starts a server on `port` (a restart on the port of one that was killed).
    pub fn start_on(port: u16) -> RedisServer {
        Self::spawn(port, &[])
    }

    fn spawn(port: u16, settings: &[&str]) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(settings)
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install redis-server (apt-get install redis-server)")
            });
        let mut server = RedisServer {
            port,
            child: Some(child),
        };
        server.wait_for_ping();
        server
    }

    fn wait_for_ping(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "redis-server on port {} exited at start: {status}",
                    self.port
                );
            }
            if ping(self.port) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PING in 10 s",
            self.port
        );
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// SIGKILL: the server vanishes mid-way, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new server on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        *self = RedisServer::start_on(self.port);
    }

    /// SIGSTOP / SIGCONT: the server is there (the kernel still accepts connections) but
    /// does not answer.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.pid())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A plain connection for looking at and altering what the store wrote.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server must be woken to die promptly and free its port.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a Redis answers PING on `port`.
pub fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// A port nothing listens on (for "unreachable" cases).
    pub fn free_port() -> u16 {
        free_port()
    }

    /// Every key matching `pattern` (for tests that look at what Cellar wrote).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.raw();
        redis::cmd("KEYS")
            .arg(pattern)
            .query::<Vec<String>>(&mut conn)
            .expect("KEYS")
    }

    /// Flips the last byte of the string at `key` (tampering, as an attacker with write access
    /// to the store would).
    pub fn flip_last_byte(&self, key: &str) {
        let mut conn = self.raw();
        let mut value: Vec<u8> = redis::cmd("GET").arg(key).query(&mut conn).expect("GET");
        if let Some(last) = value.last_mut() {
            *last ^= 0xff;
        }
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).expect("PTTL");
        let mut set = redis::cmd("SET");
        set.arg(key).arg(value);
        if ttl > 0 {
            set.arg("PX").arg(ttl);
        }
        set.query::<()>(&mut conn).expect("SET");
    }

    /// Empties the server (FLUSHALL).
    pub fn flush(&self) {
        let mut conn = self.raw();
        redis::cmd("FLUSHALL")
            .query::<()>(&mut conn)
            .expect("FLUSHALL");
    }
}
