//! HTTP GET through ureq, with errors that name the URL.

use std::io::Read as _;

use crate::error::CellarError;

/// Whether `s` is an http or https URL (and not a local path).
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Fetches a URL's body as bytes.
pub fn http_get_bytes(url: &str) -> Result<Vec<u8>, CellarError> {
    let fail = |message: String| CellarError::Http {
        url: url.to_string(),
        message,
    };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("reading the body failed: {e}")))?;
    Ok(bytes)
}

/// Fetches a URL's body as text (invalid UTF-8 is replaced).
pub fn http_get(url: &str) -> Result<String, CellarError> {
    let bytes = http_get_bytes(url)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
