//! HTTP GET through ureq, with errors that name the URL.

use std::io::Read as _;
use std::time::Duration;

use crate::error::CellarError;

/// Whether `s` is an http or https URL (and not a local path).
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// How long a request may take in all, unless the caller has less time:
/// `$CELLAR_HTTP_TIMEOUT` seconds, 30 by default. A server that accepts and never answers
/// must not hold a cell (and the window's Stop) forever.
pub fn http_timeout() -> Duration {
    std::env::var("CELLAR_HTTP_TIMEOUT")
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT)
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches a URL's body as bytes, giving up after `limit` (connecting, waiting and reading
/// together).
pub fn http_get_bytes(url: &str, limit: Duration) -> Result<Vec<u8>, CellarError> {
    let fail = |message: String| CellarError::Http {
        url: url.to_string(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(limit.min(CONNECT_TIMEOUT)))
        .timeout_global(Some(limit))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Timeout(_) => fail(format!(
            "no answer within {} s; try again, or allow longer with CELLAR_HTTP_TIMEOUT=SECONDS",
            limit.as_secs_f64()
        )),
        other => fail(other.to_string()),
    })?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("reading the body failed: {e}")))?;
    Ok(bytes)
}

/// Fetches a URL's body as text (invalid UTF-8 is replaced), within `limit`.
pub fn http_get(url: &str, limit: Duration) -> Result<String, CellarError> {
    let bytes = http_get_bytes(url, limit)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts connections and never answers.
    fn silent_server() -> (std::net::TcpListener, String) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/data.csv", listener.local_addr().unwrap());
        (listener, url)
    }

    #[test]
    fn a_server_that_never_answers_is_given_up_on() {
        let (listener, url) = silent_server();
        let held = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop(stream);
        });
        let err = http_get(&url, Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no answer within 0.3 s"), "{err}");
        assert!(err.contains("CELLAR_HTTP_TIMEOUT"), "{err}");
        held.join().unwrap();
    }
}
