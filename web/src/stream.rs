//! The live graph stream, read with `fetch()` instead of `EventSource`: an `EventSource` cannot
//! send an `Authorization` header, and a token in its URL would end up in history and access
//! logs. The body (`text/event-stream`) is parsed by `sse.rs`.
//!
//! Reconnects like `EventSource` does, with backoff: when the connection fails or ends, it is
//! opened again after 1 s, 2 s, 4 s … 30 s (+ jitter; back to 1 s once a connection delivered an
//! event; never sooner than an error answer's `Retry-After`, e.g. the 429 of the server's cap on
//! streams); the server sends the whole graph first on every connection, so nothing is missed. A
//! connection silent for longer than `STALL_MS` (the server's keep-alive comes every 15 s) is
//! taken as dead and replaced. A 401 stops the stream: the sign-in form opens, and signing in
//! rebuilds the view, which opens a new stream.
//!
//! After the first graph the server sends only changes (`delta` events); `live.rs` applies them,
//! so the map still gets a whole graph per tick. A delta that does not fit the graph held
//! reopens the connection (which starts with the whole graph again).

use crate::live::{LiveGraph, Update};
use crate::sse::{MAX_EVENT_BYTES, SseParser, backoff_ms};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{JsFuture, spawn_local};

/// No byte for this long (three keep-alive periods) → reconnect.
const STALL_MS: i32 = 45_000;

/// The stream's state, for the map's status line and `data-stream` (tests).
#[derive(Clone, Debug, PartialEq)]
pub enum StreamState {
    Connecting,
    Live,
    /// Waiting `ms` before the next attempt, after `error`.
    Retrying {
        ms: u32,
        error: String,
    },
    /// The API refused the token: stopped until the user signs in.
    Unauthorized,
}

/// An open stream; closing (or dropping) it aborts the connection and stops reconnecting.
pub struct LiveStream {
    stopped: Rc<Cell<bool>>,
    abort: Rc<RefCell<Option<web_sys::AbortController>>>,
}

/// What the map is handed: the whole graph of each tick, or a failed refresh's message.
pub type OnUpdate = Rc<dyn Fn(Update)>;

impl LiveStream {
    /// The stream handing over `Update::Graph` (the whole current graph, after each `graph` or
    /// `delta` event) and `Update::Error`.
    pub fn open_graphs(
        url: String,
        on_update: OnUpdate,
        on_state: Rc<dyn Fn(StreamState)>,
    ) -> LiveStream {
        let stopped = Rc::new(Cell::new(false));
        let abort: Rc<RefCell<Option<web_sys::AbortController>>> = Rc::default();
        let (stop, ab) = (stopped.clone(), abort.clone());
        spawn_local(async move {
            let mut failures = 0u32;
            while !stop.get() {
                on_state(StreamState::Connecting);
                let token = crate::auth::token();
                let early = take_early(&url, token.as_deref());
                let ctl = match &early {
                    Some((_, c)) => Some(c.clone()),
                    None => web_sys::AbortController::new().ok(),
                };
                *ab.borrow_mut() = ctl.clone();
                let res = connect(
                    &url,
                    early.map(|(p, _)| p),
                    token.as_deref(),
                    ctl.as_ref(),
                    &on_update,
                    &on_state,
                    &stop,
                )
                .await;
                if stop.get() {
                    return;
                }
                let (error, at_least) = match res {
                    Ended::Unauthorized => {
                        crate::auth::unauthorized(token.as_deref());
                        on_state(StreamState::Unauthorized);
                        return;
                    }
                    Ended::Refused {
                        error,
                        retry_after_ms,
                    } => (error, retry_after_ms),
                    Ended::Failed { error, delivered } => {
                        if delivered {
                            failures = 0;
                        }
                        (error, 0)
                    }
                };
                let ms = backoff_ms(failures, js_sys::Math::random()).max(at_least);
                failures = failures.saturating_add(1);
                on_state(StreamState::Retrying { ms, error });
                sleep(ms as i32).await;
            }
        });
        LiveStream { stopped, abort }
    }

    pub fn close(&self) {
        self.stopped.set(true);
        if let Some(c) = self.abort.borrow_mut().take() {
            c.abort();
        }
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.close();
    }
}

enum Ended {
    Unauthorized,
    /// An error answer; `retry_after_ms` from its `Retry-After` (0 when absent).
    Refused {
        error: String,
        retry_after_ms: u32,
    },
    /// The connection failed or ended; `delivered` when it had delivered an event.
    Failed {
        error: String,
        delivered: bool,
    },
}

/// The stream `main.js` requested before the module was loaded (`__orreryEarlyStream`: the
/// live map's URL as `UrlState::graph_query` makes it, the token it carried, its response
/// promise and abort controller), taken once: the promise and controller when it is `url` with
/// `token`; otherwise it is aborted (the server lets its subscription go) and `None`.
fn take_early(
    url: &str,
    token: Option<&str>,
) -> Option<(js_sys::Promise, web_sys::AbortController)> {
    const KEY: &str = "__orreryEarlyStream";
    let g = js_sys::global();
    let e = js_sys::Reflect::get(&g, &KEY.into()).ok()?;
    if !e.is_object() {
        return None;
    }
    let _ = js_sys::Reflect::delete_property(g.unchecked_ref::<js_sys::Object>(), &KEY.into());
    let field = |k: &str| js_sys::Reflect::get(&e, &k.into()).unwrap_or_default();
    let ctl: web_sys::AbortController = field("controller").dyn_into().ok()?;
    if field("url").as_string().as_deref() != Some(url)
        || field("token").as_string().as_deref() != token
    {
        ctl.abort();
        return None;
    }
    let p = field("response").dyn_into::<js_sys::Promise>().ok()?;
    Some((p, ctl))
}

async fn connect(
    url: &str,
    early: Option<js_sys::Promise>,
    token: Option<&str>,
    ctl: Option<&web_sys::AbortController>,
    on_update: &OnUpdate,
    on_state: &Rc<dyn Fn(StreamState)>,
    stop: &Cell<bool>,
) -> Ended {
    let failed = |error: String| Ended::Failed {
        error,
        delivered: false,
    };
    let signal = ctl.map(|c| c.signal());
    let promise = match early
        .map(Ok)
        .unwrap_or_else(|| crate::net::request(url, token, signal.as_ref()))
    {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let resp: web_sys::Response = match JsFuture::from(promise).await.map(|r| r.dyn_into()) {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return failed("bad response".into()),
        Err(e) => return failed(format!("network error: {}", crate::net::js_message(&e))),
    };
    if resp.status() == 401 {
        return Ended::Unauthorized;
    }
    if !resp.ok() {
        // A limit (429 too many streams, 503 busy) says when to come back; the message says why.
        let retry_after_ms = resp
            .headers()
            .get("retry-after")
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map(|s| s.min(300) * 1000)
            .unwrap_or(0);
        let text = match resp.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
            Err(_) => None,
        };
        let why = text
            .and_then(|t| serde_json::from_str::<crate::api::ApiError>(&t).ok())
            .map(|e| format!(": {}", e.error))
            .unwrap_or_default();
        return Ended::Refused {
            error: format!("HTTP {}{why}", resp.status()),
            retry_after_ms,
        };
    }
    let Some(body) = resp.body() else {
        return failed("no body".into());
    };
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut parser = SseParser::new(MAX_EVENT_BYTES);
    // The graph of this connection: every connection starts with the whole graph.
    let mut live = LiveGraph::new();
    let mut delivered = false;
    loop {
        let read = reader.read();
        let next = js_sys::Promise::race(&js_sys::Array::of2(&read, &timeout(STALL_MS)));
        let chunk = match JsFuture::from(next).await {
            Ok(c) => c,
            Err(e) => {
                return Ended::Failed {
                    error: format!("connection lost: {}", crate::net::js_message(&e)),
                    delivered,
                };
            }
        };
        if stop.get() {
            return Ended::Failed {
                error: "closed".into(),
                delivered,
            };
        }
        if chunk.is_undefined() {
            // The stall timer won the race: the connection is dead without having said so.
            if let Some(c) = ctl {
                c.abort();
            }
            return Ended::Failed {
                error: "no data for 45 s".into(),
                delivered,
            };
        }
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return Ended::Failed {
                error: "the server ended the stream".into(),
                delivered,
            };
        }
        let Ok(value) = js_sys::Reflect::get(&chunk, &"value".into()) else {
            continue;
        };
        let bytes = js_sys::Uint8Array::new(&value).to_vec();
        match parser.push(&bytes) {
            Ok(events) => {
                for ev in events {
                    if !delivered {
                        delivered = true;
                        on_state(StreamState::Live);
                    }
                    // Read in this task, merged in the next: a 2,000-service update is two
                    // shorter tasks (a frame can run between them), then the map's apply.
                    let parsed = live.parse(&ev);
                    sleep(0).await;
                    if stop.get() {
                        return Ended::Failed {
                            error: "closed".into(),
                            delivered,
                        };
                    }
                    match live.merge(parsed) {
                        Update::Resync(why) => {
                            // Reopened (after the short first backoff): the whole graph comes.
                            if let Some(c) = ctl {
                                c.abort();
                            }
                            return Ended::Failed {
                                error: format!("out of step with the server ({why}): reconnecting"),
                                delivered,
                            };
                        }
                        Update::Nothing => {}
                        u => on_update(u),
                    }
                }
            }
            Err(error) => {
                if let Some(c) = ctl {
                    c.abort();
                }
                return Ended::Failed { error, delivered };
            }
        }
    }
}

/// A promise resolving to `undefined` after `ms`.
fn timeout(ms: i32) -> js_sys::Promise {
    js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    })
}

async fn sleep(ms: i32) {
    let _ = JsFuture::from(timeout(ms)).await;
}
