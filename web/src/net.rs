//! Same-origin JSON fetches (relative URLs, so the UI works behind any host/port). Every API
//! request of the UI goes through `fetch_with`, which adds the API token (`auth.rs`) and turns a
//! 401 into the sign-in form; the live stream (`stream.rs`) uses `request` for the same headers.

use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// The message every view shows for a request the API refused for want of a token.
pub const UNAUTHORIZED: &str = "HTTP 401: this Orrery requires an API token (sign in)";

pub enum FetchError {
    Unauthorized,
    Other(String),
}

impl From<FetchError> for String {
    fn from(e: FetchError) -> String {
        match e {
            FetchError::Unauthorized => UNAUTHORIZED.into(),
            FetchError::Other(e) => e,
        }
    }
}

/// What a 401 does: open the sign-in form (every normal request), or only report it (the
/// sign-in form's own check of a candidate token).
#[derive(Clone, Copy, PartialEq)]
pub enum OnUnauthorized {
    SignIn,
    Report,
}

pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    let body = get_bytes(url).await?;
    serde_json::from_slice(&body).map_err(|e| format!("unexpected response: {e}"))
}

/// The body of a 2xx response, otherwise the API's `{"error": ...}` message. As bytes: copied
/// once into WASM memory, where `text()` would decode UTF-8 to a JS string and encode it back.
pub async fn get_bytes(url: &str) -> Result<Vec<u8>, String> {
    Ok(fetch_with(url, crate::auth::token().as_deref(), OnUnauthorized::SignIn).await?)
}

/// A GET of `url` carrying `token`, aborted by `signal` (the live stream's reconnects).
pub fn request(
    url: &str,
    token: Option<&str>,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<js_sys::Promise, String> {
    let w = web_sys::window().ok_or("no window")?;
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    init.set_headers_headers(&crate::auth::headers(token)?);
    init.set_signal(signal);
    Ok(w.fetch_with_str_and_init(url, &init))
}

pub async fn fetch_with(
    url: &str,
    token: Option<&str>,
    on_401: OnUnauthorized,
) -> Result<Vec<u8>, FetchError> {
    let resp = JsFuture::from(request(url, token, None).map_err(FetchError::Other)?)
        .await
        .map_err(|e| FetchError::Other(format!("network error: {}", js_message(&e))))?;
    let resp: web_sys::Response = resp
        .dyn_into()
        .map_err(|_| FetchError::Other("bad response".into()))?;
    if resp.status() == 401 {
        if on_401 == OnUnauthorized::SignIn {
            crate::auth::unauthorized(token);
        }
        return Err(FetchError::Unauthorized);
    }
    let no_body = || FetchError::Other("no body".into());
    let buf = JsFuture::from(resp.array_buffer().map_err(|_| no_body())?)
        .await
        .map_err(|_| no_body())?;
    let body = js_sys::Uint8Array::new(&buf).to_vec();
    if !resp.ok() {
        let msg = serde_json::from_slice::<crate::api::ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(FetchError::Other(format!("HTTP {}: {msg}", resp.status())));
    }
    Ok(body)
}

/// The message of a JS exception (a `TypeError: network error` → "network error").
pub fn js_message(e: &wasm_bindgen::JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

pub fn enc(s: &str) -> String {
    js_sys::encode_uri_component(s)
        .as_string()
        .unwrap_or_default()
}
