//! W3C trace-context propagation (feature `opentelemetry`).
//!
//! Adds a `traceparent` header (and `tracestate` when there is one) taken from the OpenTelemetry
//! context of the current `tracing` span: the call's `ralio.request` span, a child of the
//! caller's span. It needs a `tracing_opentelemetry` layer in the subscriber; without one, or
//! without a valid trace, no header is added.
//!
//! The header is formatted here from the span context (`00-<trace id>-<span id>-<flags>`, W3C
//! Trace Context level 1) rather than through `opentelemetry_sdk`'s propagator, to keep the SDK
//! and its global state out of the dependency tree.

use http::HeaderValue;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` value of the current span, if it belongs to a valid trace.
pub(crate) fn current_traceparent() -> Option<(String, Option<String>)> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let parent = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    let state = sc.trace_state().header();
    Some((parent, (!state.is_empty()).then_some(state)))
}

/// Adds `traceparent` / `tracestate` to a request, from the current span.
pub(crate) fn add_traceparent(req: &mut reqwest::Request) {
    if let Some((parent, state)) = current_traceparent() {
        if let Ok(v) = HeaderValue::from_str(&parent) {
            req.headers_mut().insert("traceparent", v);
        }
        if let Some(Ok(v)) = state.map(|s| HeaderValue::from_str(&s)) {
            req.headers_mut().insert("tracestate", v);
        }
    }
}
