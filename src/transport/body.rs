//! Body caps: how much of a response the SDK reads, and the one reader that reads up to a cap.
//!
//! Whether a body is a stream is decided by the operation (only `chat_stream` streams), never
//! by a response header: a server labelling any answer `text/event-stream` must not switch the
//! cap off.

use futures::{Stream, StreamExt as _};

/// At most this many bytes of an error body (or a token / registration answer) are read.
pub(crate) const ERROR_BODY_CAP: usize = 64 * 1024;

/// The most the generated code reads of a JSON answer (a page of 50 transactions is about
/// 50 KiB). It buffers whole bodies (`.json()`), so a broken or hostile server could otherwise
/// make it hold an endless body in memory; past the cap the read fails and the call ends in a
/// typed error.
pub(crate) const SUCCESS_BODY_CAP: usize = 8 << 20;

/// The operations whose success body is an event stream, parsed as it arrives and bounded by
/// the stream idle timeout instead of a size cap.
const STREAMING_OPERATIONS: &[&str] = &["chat_stream"];

/// Whether `operation_id`'s answer is a stream (never capped).
pub(crate) fn is_streaming_operation(operation_id: &str) -> bool {
    STREAMING_OPERATIONS.contains(&operation_id)
}

/// The one capped reader: reads at most `cap` bytes of `chunks`, stopping there (the rest is
/// never read). A chunk error ends the read: `Err` with what was read so far, so error paths
/// can keep the partial body and success paths can refuse it.
pub(crate) async fn read_capped<S, B, E>(chunks: S, cap: usize) -> Result<Vec<u8>, (Vec<u8>, E)>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    let mut chunks = std::pin::pin!(chunks);
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return Err((body, e)),
        };
        let chunk = chunk.as_ref();
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    Ok(body)
}

/// [`read_capped`] over a whole `reqwest::Response`; the error is the one that ended the read.
#[cfg(feature = "vault")]
pub(crate) async fn read_body_capped(
    response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    read_capped(response.bytes_stream(), cap)
        .await
        .map_err(|(_, e)| e)
}

/// An error body: at most [`ERROR_BODY_CAP`] bytes, keeping what was read when the body fails
/// midway.
pub(crate) async fn read_error_body<S, B, E>(chunks: S) -> Vec<u8>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    match read_capped(chunks, ERROR_BODY_CAP).await {
        Ok(body) | Err((body, _)) => body,
    }
}

/// A response taken apart (its URL and parts), put back together around `body`.
pub(crate) fn reassemble(
    url: url::Url,
    parts: http::response::Parts,
    body: impl Into<reqwest::Body>,
) -> Result<reqwest::Response, http::Error> {
    use reqwest::ResponseBuilderExt as _;
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
    builder.body(body.into()).map(reqwest::Response::from)
}

/// Wraps the body of `response` so that reading past [`SUCCESS_BODY_CAP`] fails, unless
/// `operation_id` is a streaming operation.
pub(crate) fn cap_body(response: reqwest::Response, operation_id: &str) -> reqwest::Response {
    if is_streaming_operation(operation_id) {
        return response;
    }
    // A declared length within the cap needs no wrapper: hyper never reads past the
    // `Content-Length` it was given (a longer body is an error), so rebuilding the response
    // would only cost time on every call.
    if response
        .content_length()
        .is_some_and(|len| len <= SUCCESS_BODY_CAP as u64)
    {
        return response;
    }
    let url = response.url().clone();
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let limited = reqwest::Body::wrap(http_body_util::Limited::new(body, SUCCESS_BODY_CAP));
    match reassemble(url, parts, limited) {
        Ok(response) => response,
        // Every part came from a valid response; this cannot fail, and if it did the caller
        // would get a clear error rather than a panic.
        Err(_) => super::hooks::carrier(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_up_to_the_cap_and_keeps_a_partial_body_on_error() {
        let chunks = futures::stream::iter(vec![Ok::<_, ()>(vec![1u8; 10]), Ok(vec![2u8; 10])]);
        assert_eq!(read_capped(chunks, 15).await.unwrap().len(), 15);
        let failing = futures::stream::iter(vec![Ok(vec![1u8; 4]), Err("cut")]);
        assert_eq!(read_error_body(failing).await, vec![1u8; 4]);
    }

    #[test]
    fn only_the_chat_stream_is_a_stream() {
        assert!(is_streaming_operation("chat_stream"));
        for op in ["list_agents", "chat", "create_token", "list_transactions"] {
            assert!(!is_streaming_operation(op), "{op}");
        }
    }
}
