//! The owner's console at `/sandbox/console`: a page where a person plays the account owner,
//! approving or rejecting the payments agents propose and the registrations hosts ask for.
//!
//! Server-rendered HTML (every string from the state escaped, see [`html`]), a stylesheet and a
//! small script, all embedded in the crate: the page loads nothing from anywhere else, and its
//! Content-Security-Policy says so. The buttons call the admin API of the same origin with JSON
//! bodies; the admin router's guards (own `Host`, no cross-origin writes) cover the page too.
//! Open pages follow an event stream that says when what they show changed, then fetch the
//! live part again.

mod html;
mod render;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::server::St;
use crate::state::Shared;

/// Where the console is served.
pub(crate) const PATH: &str = "/sandbox/console";

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Nothing but this origin's own script, styles and requests; no framing (a page that frames the
/// console could trick a click on Approve), no form posts, no `<base>`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A comment on an idle event stream, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(20);

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(PATH, get(page))
        .route("/sandbox/console/fragment", get(fragment))
        .route("/sandbox/console/events", get(events))
        .route(
            "/sandbox/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/sandbox/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// The headers every console answer carries.
fn secured(mut res: Response, content_type: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Another site cannot even load these responses as a script, style or image.
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    secured(body.into_response(), content_type)
}

/// The live part of the page, rendered under the state lock.
fn live(st: &Shared) -> String {
    render::live(&st.lock(), &st.config).into_string()
}

async fn page(State(st): St) -> Response {
    let live = live(&st);
    let mut base = html::Html::default();
    base.text(&st.base_url);
    // The URL first, then the live part, whose text could otherwise hold a marker.
    let body = PAGE
        .replace("{{base_url}}", &base.into_string())
        .replacen("{{live}}", &live, 1);
    secured(body.into_response(), "text/html; charset=utf-8")
}

async fn fragment(State(st): St) -> Response {
    secured(live(&st).into_response(), "text/html; charset=utf-8")
}

/// `event: changed` whenever what the page shows changed; ends when the sandbox stops.
async fn events(State(st): St) -> Response {
    // A new receiver has seen the current value: it wakes on the next change.
    let changes = futures::stream::unfold(st.watch_changes(), |mut rx| async move {
        if *rx.borrow() {
            return None;
        }
        tokio::select! {
            changed = rx.changed() => match changed {
                Ok(()) if !*rx.borrow() => Some((Bytes::from_static(b"event: changed\ndata: {}\n\n"), rx)),
                _ => None,
            },
            () = tokio::time::sleep(KEEP_ALIVE) => Some((Bytes::from_static(b": keep-alive\n\n"), rx)),
        }
    });
    // The first bytes open the stream at once (the page fetches the live part on open).
    let opening = futures::stream::iter([Bytes::from_static(
        b"retry: 1000\n: ralio-sandbox console\n\n",
    )]);
    let stream = futures::StreamExt::map(
        futures::StreamExt::chain(opening, changes),
        Ok::<_, Infallible>,
    );
    secured(
        Body::from_stream(stream).into_response(),
        "text/event-stream",
    )
}
