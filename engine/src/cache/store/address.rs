//! The store's address as shown to users: from the parsed URL, never with credentials.

use redis::{ConnectionAddr, ConnectionInfo};

/// The store's address for messages: scheme, host, port and database, never credentials.
pub fn describe(info: &ConnectionInfo) -> String {
    let db = info.redis_settings().db();
    let host = |h: &str| {
        if h.contains(':') && !h.starts_with('[') {
            format!("[{h}]")
        } else {
            h.to_owned()
        }
    };
    match info.addr() {
        ConnectionAddr::Tcp(h, port) => format!("redis://{}:{port}/{db}", host(h)),
        ConnectionAddr::TcpTls {
            host: h,
            port,
            insecure,
            ..
        } => format!(
            "rediss://{}:{port}/{db}{}",
            host(h),
            if *insecure { "#insecure" } else { "" }
        ),
        ConnectionAddr::Unix(path) => format!("unix://{}?db={db}", path.display()),
        other => format!("redis at {other}"),
    }
}

/// `url` with any credentials replaced by `***`, for error messages. Everything up to the
/// last `@` goes, so a password holding `/`, `?` or `@` does not show either (an `@` later in
/// the URL hides a little too much, which is harmless).
pub fn redact(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        assert_eq!(redact("redis://bob:hunter2@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://:hunter2@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://:p/a?s@s@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("user:pw@localhost:6379"), "***@localhost:6379");
        assert_eq!(redact("localhost:6379"), "localhost:6379");
        let info =
            redis::IntoConnectionInfo::into_connection_info("redis://:pw@[::1]:7/3").unwrap();
        assert_eq!(describe(&info), "redis://[::1]:7/3");
        let info =
            redis::IntoConnectionInfo::into_connection_info("rediss://u:pw@h.example:7").unwrap();
        assert_eq!(describe(&info), "rediss://h.example:7/0");
    }
}
