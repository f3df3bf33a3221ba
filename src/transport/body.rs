//! Body caps: how much of a response the SDK reads. Several readers live here side by side
//! (error bodies, success bodies read by hand, the generated code's JSON bodies, the error
//! body of a generated call); they are to become one.

use crate::api::ByteStream;

/// At most this many bytes of an error body are read and kept.
pub(crate) const ERROR_BODY_CAP: usize = 64 * 1024;

/// Read a success body, stopping after `cap` bytes (the rest is never read: dropping the
/// response closes the connection). A body cut there fails to parse, so a hostile or broken
/// server cannot make the SDK buffer an unbounded body.
pub(crate) async fn read_body_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> std::result::Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    Ok(body)
}

/// Read at most `cap` bytes of a body; a body that fails midway keeps what was read.
pub(crate) async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}

/// The most the generated code reads of a JSON answer (a page of 50 transactions is about
/// 50 KiB). It buffers whole bodies (`.json()`), so a broken or hostile server could otherwise
/// make it hold an endless body in memory; past the cap the read fails and the call ends in a
/// typed error. Event streams are not capped: they are parsed as they arrive.
pub(crate) const SUCCESS_BODY_CAP: usize = 8 << 20;

pub(crate) fn cap_body(response: reqwest::Response) -> reqwest::Response {
    use reqwest::ResponseBuilderExt as _;
    let is_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    if is_stream {
        return response;
    }
    let url = response.url().clone();
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let mut builder = http::Response::builder()
        .status(parts.status)
        .version(parts.version)
        .url(url);
    if let Some(headers) = builder.headers_mut() {
        *headers = parts.headers;
    }
    if let Some(extensions) = builder.extensions_mut() {
        extensions.extend(parts.extensions);
    }
    let limited = reqwest::Body::wrap(http_body_util::Limited::new(body, SUCCESS_BODY_CAP));
    match builder.body(limited) {
        Ok(response) => reqwest::Response::from(response),
        // Every part came from a valid response; this cannot fail, and if it did the caller
        // would get a clear error rather than a panic.
        Err(_) => super::hooks::carrier(None),
    }
}

pub(crate) async fn read_stream_capped(body: ByteStream) -> Vec<u8> {
    use futures::StreamExt;
    let mut stream = body.into_inner();
    let mut out = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = ERROR_BODY_CAP.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= ERROR_BODY_CAP {
            break;
        }
    }
    out
}
