//! The SSE → `ChatEvent` parser (`ChatStream::from_bytes`) on arbitrary bytes, cut into
//! arbitrary chunks.
//!
//! Checks, beyond "no panic, no hang":
//! - the stream ends, with at most one error item, and that item is the last one;
//! - nothing follows the final `reply` event;
//! - a stream either delivers a `reply` or ends in an error (never a silent end);
//! - chunking does not matter: the same bytes delivered in one piece give the same items.
//!
//! Shared by the fuzz target `fuzz_targets/sse_chat_stream.rs` and by the regression test
//! `tests/it/fuzz_seeds.rs`, which replays `fuzz/seeds/sse_chat_stream/` in the normal test suite.

use bytes::Bytes;
use futures::StreamExt;
use ralio::{ChatEvent, ChatStream};

fn run(chunks: Vec<Bytes>) -> Vec<String> {
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let chat = ChatStream::from_bytes(stream, None);
    let items: Vec<_> = futures::executor::block_on(chat.collect());
    let mut out = Vec::with_capacity(items.len());
    let last = items.len().saturating_sub(1);
    let mut saw_reply = false;
    for (i, item) in items.into_iter().enumerate() {
        assert!(!saw_reply, "an item followed the final reply");
        match item {
            Ok(event) => {
                saw_reply = matches!(event, ChatEvent::Reply(_));
                out.push(format!("{event:?}"));
            }
            Err(e) => {
                assert_eq!(i, last, "an error item was not the last one");
                out.push(format!("error: {e}"));
            }
        }
    }
    assert!(
        saw_reply || out.last().is_some_and(|s| s.starts_with("error: ")),
        "the stream ended without a reply and without an error: {out:?}"
    );
    out
}

/// Runs the target on `data`; panics when a check fails.
pub fn check(data: &[u8]) {
    // First byte: the chunk length (1..=64); the rest is the body.
    let Some((&n, body)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 64) + 1;
    let chunked: Vec<Bytes> = body.chunks(n).map(Bytes::copy_from_slice).collect();
    let whole = vec![Bytes::copy_from_slice(body)];
    let a = run(chunked);
    let b = run(whole);
    assert_eq!(a, b, "the chunking changed the parsed events");
}
