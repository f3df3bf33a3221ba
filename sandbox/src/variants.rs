//! Varied answers: the legal variety a real Ralio server may send, chosen deterministically from
//! the sandbox's seed. See [`Answers`] for what varies and the evidence for each variation.

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Environment variable that picks the answer mode of [`Sandbox::builder`](crate::Sandbox::builder)
/// and of the `ralio-sandbox` binary: `1` (also `true`, `yes`, `on`, `varied`) for
/// [`Answers::Varied`], `0` (also `false`, `no`, `off`, `uniform`, empty, unset) for
/// [`Answers::Uniform`]. Any other value makes [`SandboxBuilder::start`](crate::SandboxBuilder::start)
/// fail with [`SandboxError::InvalidConfig`](crate::SandboxError::InvalidConfig).
pub const ANSWERS_ENV: &str = "RALIO_SANDBOX_VARIANTS";

/// How the sandbox shapes its answers.
///
/// [`Answers::Uniform`] (the default) answers every request in one canonical shape: every
/// schema field present, RFC 3339 UTC timestamps, `agent_number` as the string the vendored
/// OpenAPI document declares, SSE with `\n` line ends and one record per write.
///
/// [`Answers::Varied`] answers in the variety the official SDKs show a real server may use, so
/// a client tested against it is at least as forgiving as they are. Every choice is a pure
/// function of the sandbox's seed and the object (its id, the list page, the event's place in
/// the stream), so the same seed gives the same answers, and the same object looks the same on
/// every read. Ids, amounts, currencies and statuses stay present; money never changes.
///
/// | variation | where | evidence in the official SDKs |
/// | --- | --- | --- |
/// | `agent_number` is a JSON integer (`1`, not `"AG-0001"`) | agents | Python `ralio==0.1.4` `types.py`: `Agent.agent_number: int \| None` |
/// | timestamps as RFC 3339 `Z`, `+00:00` with microseconds, naive with microseconds (`2026-04-01T10:00:00.123456`), naive without fraction (`2026-04-01T10:00:00`), left out, or `null` | `created_at` (agent, message, intent), `decided_at`, transaction `date` | Python: every timestamp is a plain `str \| None` read with `data.get(...)` (default `None`), never parsed; TypeScript `ralio-node` `types.ts`: `optStr(data.created_at)`, and its tests send `created_at: "t"` |
/// | optional descriptive fields left out or `null` even when known | agent `banking_provider`; intent `agent_name`, `user_request_summary`, `alignment_outcome` | Python `data.get(...)` with default `None`; TypeScript `optStr` (anything but a string is `null`) |
/// | fields whose value is `null` left out (a server with `exclude_none`) | every nullable field: transaction `creditor`, `debtor`, `reference`, `payment_intent_id`; intent `conversation_id`, `decision_reason`, `decided_at`; every nullable instruction field | same as above: absent and `null` read alike |
/// | list envelopes without `page` (on page 1) or without `total` (when page 1 holds every item) | transactions, payment intents | Python `Page._from_api`: `page` defaults to 1 and `total` to the number of rows, so these answers read back the same |
/// | unknown extra fields (objects, `null`s, floats, nested lists) | agents, messages, chat replies, transactions, intents, instructions, list envelopes, SSE event data | Python and TypeScript `types` docstrings: "unknown fields the API may add later are ignored"; docs/protocol.md: unknown fields never break a client |
/// | status values no SDK knows (`settled`, `booked`) | instruction `status` and `transaction_status` of executed legs | Python and TypeScript keep every status as a plain string; docs/protocol.md: status fields are open sets ("more exist") |
/// | plain `401 {"detail": "Token expired"}` without `WWW-Authenticate` on resource calls: the k-th call of every access token (k = [`plain_401_every`]), which also expires that token; never on the token endpoint, never twice in a row for a client that renews once | agents, chat, chat stream, transactions, payment intents | Python `transport.py` and TypeScript `transport.ts`: on any 401 refresh once and retry once with a fresh proof; the TypeScript test "retries once on 401 with a fresh proof" answers a bare `401 {detail: "expired"}` |
/// | SSE: `: keep-alive` comments (between records and inside a record), CRLF line ends, records split across body frames mid-line (also between `\r` and `\n`, and inside a multi-byte UTF-8 character), `data:` without the optional space, JSON spread over several `data:` lines, `id:` and `retry:` fields, an unknown `usage` event before `reply` | chat stream | Python `_parse_sse` (httpx `iter_lines` handles `\r\n`, skips `:` lines, strips one space, joins `data:` lines with `\n`); TypeScript `parseSse` (buffers across chunks, decodes UTF-8 in streaming mode, strips a trailing `\r`, skips `:` lines, ignores unknown fields); docs/protocol.md: unknown events pass through |
///
/// Not varied, on purpose:
/// - Amounts stay decimal strings: `openapi/ralio.json` types `amount` and `total_amount` as
///   `string` only (example `"500.00"`), and the TypeScript SDK reads them with `str(...)`,
///   which turns a JSON number into `""`. A numeric amount is not something the real server
///   may legally send.
/// - Schema-required fields whose default would change the meaning (`new_messages`,
///   `instructions`, `instruction_count`, `per_page`) stay present, as do ids, amounts,
///   currencies, statuses that drive a decision (`approval_status`, `execution_status`,
///   transaction `status`) and the chat reply's `reply` and `conversation_id`.
/// - The token endpoint and registration answer as in uniform mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Answers {
    /// One canonical shape (the default).
    #[default]
    Uniform,
    /// The legal variety, chosen from the seed.
    Varied,
}

impl Answers {
    /// The mode [`ANSWERS_ENV`] asks for: unset or empty is [`Answers::Uniform`]; a value that
    /// is not understood is an error saying what to set.
    pub fn from_env() -> Result<Answers, &'static str> {
        match std::env::var(ANSWERS_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Answers::Uniform),
            Err(std::env::VarError::NotUnicode(_)) => Err(BAD_VALUE),
            Ok(v) => Answers::parse(&v),
        }
    }

    /// Reads a mode as [`ANSWERS_ENV`] spells it (`1`/`0`, `true`/`false`, `varied`/`uniform`, …).
    pub fn parse(value: &str) -> Result<Answers, &'static str> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "no" | "off" | "uniform" => Ok(Answers::Uniform),
            "1" | "true" | "yes" | "on" | "varied" => Ok(Answers::Varied),
            _ => Err(BAD_VALUE),
        }
    }
}

const BAD_VALUE: &str =
    "RALIO_SANDBOX_VARIANTS must be 1 (varied answers) or 0 (uniform answers), or unset";

/// Which resource call of an access token gets the plain 401 in [`Answers::Varied`]: the 3rd,
/// 4th or 5th, from the seed (`3 + seed % 3`).
pub fn plain_401_every(seed: u64) -> u32 {
    3 + u32::try_from(seed % 3).unwrap_or(0)
}

/// A number fixed by the seed and `key`: the dice of every variation.
fn roll(seed: u64, key: &str) -> u64 {
    let d = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// A timestamp in one of the forms a real server may send, or left out, or `null`.
fn vary_time(o: &mut Map<String, Value>, field: &str, r: u64) {
    let t = match o.get(field) {
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => return,
        },
        Some(Value::Null) => {
            if r.is_multiple_of(2) {
                o.remove(field);
            }
            return;
        }
        _ => return,
    };
    let form = match r % 7 {
        0 => return, // as uniform mode sends it
        1 => t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
        2 | 3 => t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        4 | 5 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        _ => {
            if r.is_multiple_of(2) {
                o.remove(field);
            } else {
                o.insert(field.to_owned(), Value::Null);
            }
            return;
        }
    };
    o.insert(field.to_owned(), Value::String(form));
}

/// A descriptive optional field: kept, left out or `null`.
fn vary_optional(o: &mut Map<String, Value>, field: &str, r: u64) {
    match r % 3 {
        0 => {}
        1 => {
            o.remove(field);
        }
        _ => {
            if o.contains_key(field) {
                o.insert(field.to_owned(), Value::Null);
            }
        }
    }
}

/// A nullable field: when its value is `null`, sometimes left out (never when it has a value).
fn drop_if_null(o: &mut Map<String, Value>, field: &str, r: u64) {
    if r.is_multiple_of(2) && o.get(field) == Some(&Value::Null) {
        o.remove(field);
    }
}

fn id_of(o: &Map<String, Value>) -> String {
    o.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An agent of `GET /api/agents`.
pub(crate) fn agent(seed: u64, mut v: Value) -> Value {
    let Some(o) = v.as_object_mut() else { return v };
    let id = id_of(o);
    let r = |f: &str| roll(seed, &format!("agent:{id}:{f}"));
    let number = o.get("agent_number").and_then(Value::as_str).and_then(|s| {
        s.trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse::<u64>()
            .ok()
    });
    if let Some(n) = number {
        o.insert("agent_number".into(), json!(n));
    }
    vary_optional(o, "banking_provider", r("banking_provider"));
    vary_time(o, "created_at", r("created_at"));
    o.insert("description".into(), Value::Null);
    o.insert(
        "spend_limits".into(),
        json!({ "per_payment": "1000.00", "currency": "GBP", "window_days": 30 }),
    );
    v
}

/// A chat message (`new_messages` items).
fn message(seed: u64, mut v: Value) -> Value {
    let Some(o) = v.as_object_mut() else { return v };
    let id = id_of(o);
    vary_time(
        o,
        "created_at",
        roll(seed, &format!("message:{id}:created_at")),
    );
    if roll(seed, &format!("message:{id}:extra")).is_multiple_of(2) {
        o.insert("tool_calls".into(), Value::Null);
    } else {
        o.insert(
            "metadata".into(),
            json!({ "tokens": 12, "latency_s": 0.42 }),
        );
    }
    v
}

/// The answer of `POST /api/chat`.
pub(crate) fn chat_reply(seed: u64, mut v: Value, payment_intent_id: Option<&str>) -> Value {
    let Some(o) = v.as_object_mut() else { return v };
    if let Some(Value::Array(msgs)) = o.remove("new_messages") {
        let msgs: Vec<Value> = msgs.into_iter().map(|m| message(seed, m)).collect();
        o.insert("new_messages".into(), Value::Array(msgs));
    }
    o.insert("payment_intent_id".into(), json!(payment_intent_id));
    o.insert(
        "usage".into(),
        json!({ "input_tokens": 31, "output_tokens": 17, "cost": 0.0004 }),
    );
    v
}

/// A transaction of `GET /api/transactions`.
pub(crate) fn transaction(seed: u64, mut v: Value) -> Value {
    let Some(o) = v.as_object_mut() else { return v };
    let id = id_of(o);
    let r = |f: &str| roll(seed, &format!("transaction:{id}:{f}"));
    vary_time(o, "date", r("date"));
    for f in ["creditor", "debtor", "reference", "payment_intent_id"] {
        drop_if_null(o, f, r(f));
    }
    o.insert("category".into(), Value::Null);
    o.insert(
        "metadata".into(),
        json!({ "rail": "faster_payments", "attempts": [1] }),
    );
    v
}

/// One instruction (leg) of a payment intent.
fn instruction(seed: u64, intent_id: &str, idx: usize, mut v: Value) -> Value {
    let Some(o) = v.as_object_mut() else { return v };
    let r = |f: &str| roll(seed, &format!("instruction:{intent_id}:{idx}:{f}"));
    for f in [
        "idempotency_key",
        "creditor_account",
        "creditor_name",
        "debtor_account",
        "debtor_name",
        "reference",
        "transaction_id",
        "transaction_status",
        "execution_error",
    ] {
        drop_if_null(o, f, r(f));
    }
    if o.get("status").and_then(Value::as_str) == Some("completed") && r("status").is_multiple_of(2)
    {
        o.insert("status".into(), json!("settled"));
    }
    if o.get("transaction_status").and_then(Value::as_str) == Some("completed")
        && r("transaction_status:unknown").is_multiple_of(2)
    {
        o.insert("transaction_status".into(), json!("booked"));
    }
    o.insert("scheme".into(), json!("FPS"));
    v
}

/// A payment intent of `GET /api/payment-intents`.
pub(crate) fn payment_intent(seed: u64, mut v: Value) -> Value {
    let Some(o) = v.as_object_mut() else { return v };
    let id = id_of(o);
    let r = |f: &str| roll(seed, &format!("intent:{id}:{f}"));
    for f in ["agent_name", "user_request_summary", "alignment_outcome"] {
        vary_optional(o, f, r(f));
    }
    vary_time(o, "created_at", r("created_at"));
    vary_time(o, "decided_at", r("decided_at"));
    for f in ["conversation_id", "decision_reason"] {
        drop_if_null(o, f, r(f));
    }
    if let Some(Value::Array(legs)) = o.remove("instructions") {
        let legs: Vec<Value> = legs
            .into_iter()
            .enumerate()
            .map(|(i, l)| instruction(seed, &id, i, l))
            .collect();
        o.insert("instructions".into(), Value::Array(legs));
    }
    o.insert(
        "risk".into(),
        json!({ "score": 0.02, "flags": [], "reviewed": null }),
    );
    v
}

/// A paged list envelope (`{<key>: [..], total, page, per_page}`) with varied items.
pub(crate) fn list(
    seed: u64,
    key: &str,
    items: Vec<Value>,
    total: u64,
    page: u64,
    per_page: u64,
) -> Value {
    let count = items.len() as u64;
    let mut o = Map::new();
    o.insert(key.to_owned(), Value::Array(items));
    o.insert("total".into(), json!(total));
    o.insert("page".into(), json!(page));
    o.insert("per_page".into(), json!(per_page));
    let r = roll(seed, &format!("list:{key}:{page}:{per_page}:{total}"));
    // Python's Page defaults page to 1 and total to the rows on the page: left out only where
    // that default is the true value.
    if page == 1 && r.is_multiple_of(2) {
        o.remove("page");
    }
    if page == 1 && total == count && (r >> 8).is_multiple_of(2) {
        o.remove("total");
    }
    o.insert(
        "has_more".into(),
        json!(page.saturating_mul(per_page) < total),
    );
    o.insert("next_cursor".into(), Value::Null);
    Value::Object(o)
}

/// The first write of a varied stream: a reconnection hint and a keep-alive, no event.
pub(crate) fn sse_preamble() -> Bytes {
    Bytes::from_static(b"retry: 3000\r\n: keep-alive\r\n\r\n")
}

/// A standalone keep-alive comment record.
pub(crate) fn sse_keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\r\n\r\n")
}

/// Whether a keep-alive record follows event `index`.
pub(crate) fn sse_keep_alive_after(seed: u64, index: usize) -> bool {
    roll(seed, &format!("sse:{index}:keep-alive")).is_multiple_of(3)
}

/// One SSE record in varied form, cut into the pieces to send as separate body frames.
pub(crate) fn sse_record(seed: u64, index: usize, name: &str, data: &Value) -> Vec<Bytes> {
    let r = roll(seed, &format!("sse:{index}:record"));
    let mut data = data.clone();
    if let Some(o) = data.as_object_mut() {
        o.insert("seq".into(), json!(index));
    }
    let mut lines: Vec<String> = Vec::new();
    if index == 0 || r.is_multiple_of(2) {
        lines.push(": keep-alive".into());
    }
    if r.is_multiple_of(3) {
        lines.push(format!("id: {index}"));
    }
    lines.push(format!("event: {name}"));
    if index == 1 || (r >> 4) % 4 == 1 {
        lines.push(": keep-alive".into()); // a comment inside the record
    }
    match (r >> 8) % 4 {
        // JSON spread over several data lines: they join with "\n", which JSON reads as space.
        0 => {
            let pretty = serde_json::to_string_pretty(&data).unwrap_or_default();
            lines.extend(pretty.lines().map(|l| format!("data: {l}")));
        }
        1 => lines.push(format!("data:{data}")),
        _ => lines.push(format!("data: {data}")),
    }
    let mut text = lines.join("\r\n");
    text.push_str("\r\n\r\n");
    let bytes = text.into_bytes();

    // Cut points: one anywhere mid-record, one between "\r" and "\n" on some records, one
    // inside a multi-byte UTF-8 character when there is one.
    let mut cuts: Vec<usize> = Vec::new();
    if bytes.len() > 2 {
        cuts.push(1 + usize::try_from((r >> 16) % (bytes.len() as u64 - 1)).unwrap_or(0));
    }
    if index % 3 == 1
        && let Some(p) = bytes.windows(2).position(|w| w == b"\r\n")
    {
        cuts.push(p + 1);
    }
    if let Some(p) = bytes.iter().position(|b| *b >= 0xC0) {
        cuts.push(p + 1);
    }
    cuts.retain(|c| *c > 0 && *c < bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let bytes = Bytes::from(bytes);
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for c in cuts {
        pieces.push(bytes.slice(start..c));
        start = c;
    }
    pieces.push(bytes.slice(start..));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_value_is_read_strictly() {
        assert_eq!(Answers::parse("1"), Ok(Answers::Varied));
        assert_eq!(Answers::parse(" Varied "), Ok(Answers::Varied));
        assert_eq!(Answers::parse("true"), Ok(Answers::Varied));
        assert_eq!(Answers::parse("0"), Ok(Answers::Uniform));
        assert_eq!(Answers::parse(""), Ok(Answers::Uniform));
        assert_eq!(Answers::parse("uniform"), Ok(Answers::Uniform));
        assert!(Answers::parse("2").is_err());
        assert!(Answers::parse("maybe").is_err());
    }

    #[test]
    fn a_record_cut_into_pieces_is_the_same_bytes() {
        for i in 0..12 {
            let pieces = sse_record(7, i, "text_delta", &json!({ "text": "Pay £25 to Bob" }));
            assert!(pieces.len() >= 2, "record {i} is not split");
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            let text = String::from_utf8(joined).unwrap();
            assert!(text.ends_with("\r\n\r\n"));
            assert!(!text.replace("\r\n", "").contains('\n'), "{text:?}");
            // The pieces themselves may cut a character in two.
            assert!(pieces.iter().any(|p| std::str::from_utf8(p).is_err()));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_answers_and_another_seed_others() {
        let tx = json!({ "id": "tx_1", "amount": "5.00", "currency": "GBP", "status": "completed",
            "date": "2026-04-01T10:00:00.123456789Z", "creditor": null });
        assert_eq!(transaction(3, tx.clone()), transaction(3, tx.clone()));
        let differs = (0..20).any(|s| transaction(s, tx.clone()) != transaction(3, tx.clone()));
        assert!(differs);
    }
}
