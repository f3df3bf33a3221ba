//! The DPoP-protected resources: agents, chat, chat stream, transactions, payment intents.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::agent::{self, Event, Turn};
use crate::auth::authenticate;
use crate::server::{St, detail, json_body, opt_str, req_str, validation_error, verr};
use crate::state::Shared;
use crate::{Answers, SCOPE_AGENTS_EXECUTE, SCOPE_TRANSACTIONS_READ, variants};

/// Pause between stream events, so each reaches the client as its own write.
const STREAM_PACE: Duration = Duration::from_millis(15);
/// Pause between the pieces of one record in varied streams, so each leaves as its own frame.
const SPLIT_PACE: Duration = Duration::from_millis(2);
/// Largest `per_page`.
const MAX_PER_PAGE: u64 = 200;

fn varied(st: &Shared) -> bool {
    st.config.answers == Answers::Varied
}

/// Varied answers: the plain `401 {"detail": "Token expired"}` (no `WWW-Authenticate`) that some
/// authenticated resource calls get instead of their answer; see [`variants::plain_401_every`].
fn plain_401(st: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    if !varied(st) {
        return Ok(());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split_once(' '))
        .map(|(_, t)| t.trim());
    let Some(token) = token else { return Ok(()) };
    if st
        .lock()
        .plain_401_due(token, variants::plain_401_every(st.config.seed))
    {
        return Err(detail(StatusCode::UNAUTHORIZED, "Token expired"));
    }
    Ok(())
}

pub(crate) async fn agents(
    State(st): St,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let caller = match authenticate(&st, &method, &headers, uri.path(), None) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(r) = plain_401(&st, &headers) {
        return r;
    }
    let inner = st.lock();
    let mut list: Vec<Value> = inner
        .agents
        .get(&caller.agent_id)
        .map(|a| a.json())
        .into_iter()
        .collect();
    if varied(&st) {
        list = list
            .into_iter()
            .map(|a| variants::agent(st.config.seed, a))
            .collect();
    }
    axum::Json(list).into_response()
}

/// An authenticated (scope `agents:execute`), validated chat request run as one agent turn, or
/// the response to send instead. Shared by the plain and the streamed chat.
fn chat_request(
    st: &Shared,
    method: &Method,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Turn, Response> {
    let caller = authenticate(st, method, headers, uri.path(), Some(SCOPE_AGENTS_EXECUTE))?;
    plain_401(st, headers)?;
    let m = json_body(headers, body)?;
    let mut errors = Vec::new();
    let agent_id = req_str(&m, "agent_id", &mut errors);
    let message = req_str(&m, "message", &mut errors);
    let conversation_id = opt_str(&m, "conversation_id", &mut errors);
    let (Some(agent_id), Some(message), true) = (agent_id, message, errors.is_empty()) else {
        return Err(validation_error(errors));
    };
    let mut inner = st.lock();
    if !inner.agents.contains_key(&agent_id) {
        return Err(detail(
            StatusCode::NOT_FOUND,
            format!("Agent {agent_id} not found: list your agents with GET /api/agents"),
        ));
    }
    if agent_id != caller.agent_id {
        return Err(detail(
            StatusCode::FORBIDDEN,
            format!(
                "This credential binding acts for agent {} only",
                caller.agent_id
            ),
        ));
    }
    if let Some(cid) = &conversation_id {
        let known = inner
            .agents
            .get(&agent_id)
            .is_some_and(|a| a.conversations.contains_key(cid));
        if !known {
            return Err(detail(
                StatusCode::NOT_FOUND,
                format!("Conversation {cid} not found: omit conversation_id to start a new one"),
            ));
        }
    }
    let turn = agent::run_turn(&mut inner, &st.config, &agent_id, conversation_id, &message);
    drop(inner);
    if turn.payment_intent_id.is_some() {
        st.changed();
    }
    Ok(turn)
}

pub(crate) async fn chat(
    State(st): St,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let turn = match chat_request(&st, &method, &uri, &headers, &body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut answer = json!({
        "reply": turn.reply,
        "conversation_id": turn.conversation_id,
        "new_messages": turn.new_messages,
    });
    if varied(&st) {
        answer = variants::chat_reply(st.config.seed, answer, turn.payment_intent_id.as_deref());
    }
    axum::Json(answer).into_response()
}

fn sse(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

pub(crate) async fn chat_stream(
    State(st): St,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let turn = match chat_request(&st, &method, &uri, &headers, &body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let faults = st.faults();
    let assistant_id = turn.new_messages.last().map(|m| m.id.clone());
    let mut events: Vec<Event> = vec![(
        "conversation",
        json!({ "conversation_id": turn.conversation_id }),
    )];
    events.extend(turn.tool_events);
    events.extend(
        agent::deltas(&turn.reply)
            .into_iter()
            .map(|t| ("text_delta", json!({ "text": t }))),
    );
    if varied(&st) {
        // An event no SDK knows: it must pass through.
        events.push((
            "usage",
            json!({ "input_tokens": 31, "output_tokens": turn.reply.len(), "cost": 0.0004 }),
        ));
    }
    events.push((
        "reply",
        json!({ "text": turn.reply, "conversation_id": turn.conversation_id, "message_id": assistant_id, "payment_intent_id": turn.payment_intent_id }),
    ));

    let seed = varied(&st).then_some(st.config.seed);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        // A comment first: clients must skip it.
        let first = match seed {
            Some(_) => variants::sse_preamble(),
            None => Bytes::from_static(b": ralio-sandbox stream\n\n"),
        };
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        for (i, (name, data)) in events.iter().enumerate() {
            let sent = u32::try_from(i).unwrap_or(u32::MAX);
            // Paced so each event (and what came before a cut) leaves as its own write.
            tokio::time::sleep(STREAM_PACE).await;
            if faults.stream_cut_after == Some(sent) {
                // Let hyper take what was sent so far, then an error body frame makes it drop the
                // connection mid-body.
                while tx.capacity() < tx.max_capacity() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let _ = tx
                    .send(Err(std::io::Error::other("injected stream cut")))
                    .await;
                return;
            }
            if faults.stream_error_after == Some(sent) {
                let _ = tx.send(Ok(sse("error", &json!({ "message": "Injected fault (ralio-sandbox): the agent failed mid-stream" })))).await;
                return;
            }
            let Some(seed) = seed else {
                if tx.send(Ok(sse(name, data))).await.is_err() {
                    return;
                }
                continue;
            };
            for (j, piece) in variants::sse_record(seed, i, name, data)
                .into_iter()
                .enumerate()
            {
                if j > 0 {
                    tokio::time::sleep(SPLIT_PACE).await;
                }
                if tx.send(Ok(piece)).await.is_err() {
                    return;
                }
            }
            if variants::sse_keep_alive_after(seed, i) {
                tokio::time::sleep(SPLIT_PACE).await;
                if tx.send(Ok(variants::sse_keep_alive())).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

struct PageQuery {
    page: u64,
    per_page: u64,
    agent_id: Option<String>,
}

/// `page` ≥ 1 (default 1), 1 ≤ `per_page` ≤ 200 (default 50), FastAPI-style 422 otherwise.
fn page_query(raw: Option<&str>) -> Result<PageQuery, Response> {
    let mut q = PageQuery {
        page: 1,
        per_page: 50,
        agent_id: None,
    };
    let mut errors = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (name, min, max) = match k.as_ref() {
            "page" => ("page", 1, u64::MAX),
            "per_page" => ("per_page", 1, MAX_PER_PAGE),
            "agent_id" => {
                q.agent_id = Some(v.to_string());
                continue;
            }
            _ => continue,
        };
        let loc = [Value::from("query"), Value::from(name)];
        let Ok(n) = v.trim().parse::<i64>() else {
            errors.push(verr(
                "int_parsing",
                &loc,
                "Input should be a valid integer, unable to parse string as an integer",
                Value::from(v.as_ref()),
            ));
            continue;
        };
        if n < min as i64 {
            let mut e = verr(
                "greater_than_equal",
                &loc,
                &format!("Input should be greater than or equal to {min}"),
                Value::from(v.as_ref()),
            );
            e["ctx"] = json!({ "ge": min });
            errors.push(e);
            continue;
        }
        if n as u64 > max {
            let mut e = verr(
                "less_than_equal",
                &loc,
                &format!("Input should be less than or equal to {max}"),
                Value::from(v.as_ref()),
            );
            e["ctx"] = json!({ "le": max });
            errors.push(e);
            continue;
        }
        if name == "page" {
            q.page = n as u64
        } else {
            q.per_page = n as u64
        }
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(validation_error(errors))
    }
}

/// Shared body of the two paged lists.
fn paged(
    st: &Shared,
    method: &Method,
    uri: &OriginalUri,
    headers: &HeaderMap,
    key: &str,
    pick: fn(&crate::state::Agent) -> Vec<Value>,
    vary: fn(u64, Value) -> Value,
) -> Response {
    let caller = match authenticate(
        st,
        method,
        headers,
        uri.path(),
        Some(SCOPE_TRANSACTIONS_READ),
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(r) = plain_401(st, headers) {
        return r;
    }
    let q = match page_query(uri.query()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    if let Some(a) = &q.agent_id
        && *a != caller.agent_id
    {
        return detail(
            StatusCode::FORBIDDEN,
            format!(
                "This credential binding can read agent {} only",
                caller.agent_id
            ),
        );
    }
    let inner = st.lock();
    let mut all = inner
        .agents
        .get(&caller.agent_id)
        .map(pick)
        .unwrap_or_default();
    all.reverse(); // newest first
    let total = all.len();
    let skip = usize::try_from((q.page - 1).saturating_mul(q.per_page)).unwrap_or(usize::MAX);
    let items: Vec<Value> = all
        .into_iter()
        .skip(skip)
        .take(q.per_page as usize)
        .collect();
    if varied(st) {
        let seed = st.config.seed;
        let items = items.into_iter().map(|v| vary(seed, v)).collect();
        return axum::Json(variants::list(
            seed,
            key,
            items,
            total as u64,
            q.page,
            q.per_page,
        ))
        .into_response();
    }
    axum::Json(json!({ key: items, "total": total, "page": q.page, "per_page": q.per_page }))
        .into_response()
}

pub(crate) async fn transactions(
    State(st): St,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    paged(
        &st,
        &method,
        &uri,
        &headers,
        "transactions",
        |a| {
            a.transactions
                .iter()
                .filter_map(|t| serde_json::to_value(t).ok())
                .collect()
        },
        variants::transaction,
    )
}

pub(crate) async fn payment_intents(
    State(st): St,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    paged(
        &st,
        &method,
        &uri,
        &headers,
        "payment_intents",
        |a| {
            a.intents
                .iter()
                .filter_map(|i| serde_json::to_value(i).ok())
                .collect()
        },
        variants::payment_intent,
    )
}
