//! The API token of a query service started with `--api-token`: asked for once by a sign-in
//! form (opened by the first `401`), kept in the tab's `sessionStorage`, sent as
//! `Authorization: Bearer …` by every fetch (`net.rs`) and by the live stream (`stream.rs`).
//!
//! Why `sessionStorage` (docs/decisions.md): it survives reloads of the tab but ends with the
//! tab, is not shared with other tabs or written to disk the way `localStorage` is, and is never
//! sent anywhere by the browser on its own (unlike a cookie, so no CSRF). The token is never
//! put in a URL (history, logs, `Referer`).

use crate::signin::{EXPIRED, On401, REQUIRED, on_401};
use leptos::prelude::*;
use std::cell::RefCell;

const KEY: &str = "orrery.api_token";

// The signals are created on first use, which is in `App` (its owner lives as long as the
// page), so they are never disposed while a view still reads them.
thread_local! {
    static TOKEN: RefCell<Option<String>> = RefCell::new(read_stored());
    static STATE: AuthState = AuthState {
        prompt: RwSignal::new(None),
        epoch: RwSignal::new(0),
        signed_in: RwSignal::new(read_stored().is_some()),
    };
}

/// The UI's view of the auth state (signals, so the form and the sign-out control follow it).
#[derive(Clone, Copy)]
pub struct AuthState {
    /// The sign-in form's message while it is open.
    pub prompt: RwSignal<Option<String>>,
    /// Bumped on sign-in and sign-out: the views are rebuilt, so every request is made again
    /// with the new credentials (and the live stream is reopened).
    pub epoch: RwSignal<u64>,
    /// A token is held (shows the sign-out control).
    pub signed_in: RwSignal<bool>,
}

pub fn state() -> AuthState {
    STATE.with(|s| *s)
}

fn session() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

fn read_stored() -> Option<String> {
    session()?
        .get_item(KEY)
        .ok()
        .flatten()
        .filter(|t| !t.is_empty())
}

/// The token to send, if any.
pub fn token() -> Option<String> {
    TOKEN.with(|t| t.borrow().clone())
}

fn set_token(token: Option<String>) {
    if let Some(s) = session() {
        let _ = match &token {
            Some(t) => s.set_item(KEY, t),
            None => s.remove_item(KEY),
        };
    }
    state().signed_in.set(token.is_some());
    TOKEN.with(|t| *t.borrow_mut() = token);
}

/// `Authorization` header for `token`; an error when the browser refuses the value (a header
/// value is a byte string: no control characters, nothing beyond U+00FF).
pub fn headers(token: Option<&str>) -> Result<web_sys::Headers, String> {
    let h = web_sys::Headers::new().map_err(|_| "no Headers")?;
    if let Some(t) = token {
        h.set("authorization", &format!("Bearer {t}"))
            .map_err(|_| "the token has characters an HTTP header cannot carry".to_string())?;
    }
    Ok(h)
}

/// A request answered 401. `sent` is the token it carried: a late 401 for other credentials
/// than the tab's current ones changes nothing (`signin::on_401`).
pub fn unauthorized(sent: Option<&str>) {
    let msg = match on_401(sent, token().as_deref()) {
        On401::Ignore => return,
        On401::Required => REQUIRED,
        On401::Expired => {
            set_token(None);
            EXPIRED
        }
    };
    let prompt = state().prompt;
    if prompt.get_untracked().is_none() {
        prompt.set(Some(msg.to_string()));
    }
}

/// Keeps `candidate`, which the API has just accepted (`app.rs` checks it with a request of its
/// own: this module holds the credentials and imports nothing that sends requests, so `net.rs`
/// can take the token from here without a loop). Closes the form and rebuilds the views.
pub fn accept(candidate: &str) {
    set_token(Some(candidate.to_string()));
    let s = state();
    s.prompt.set(None);
    s.epoch.update(|e| *e += 1);
}

/// Forgets the token; the rebuilt views' first request opens the sign-in form again.
pub fn sign_out() {
    set_token(None);
    state().epoch.update(|e| *e += 1);
}
