//! Same-origin JSON fetches (relative URLs, so the UI works behind any host/port).

use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    let text = get_text(url).await?;
    serde_json::from_str(&text).map_err(|e| format!("unexpected response: {e}"))
}

/// The body of a 2xx response; otherwise the API's `{"error": ...}` message.
pub async fn get_text(url: &str) -> Result<String, String> {
    let w = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(w.fetch_with_str(url))
        .await
        .map_err(|e| format!("network error: {e:?}"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "bad response")?;
    let text = JsFuture::from(resp.text().map_err(|_| "no body")?)
        .await
        .map_err(|_| "no body")?
        .as_string()
        .unwrap_or_default();
    if !resp.ok() {
        let msg = serde_json::from_str::<crate::api::ApiError>(&text)
            .map(|e| e.error)
            .unwrap_or(text);
        return Err(format!("HTTP {}: {msg}", resp.status()));
    }
    Ok(text)
}

pub fn enc(s: &str) -> String {
    js_sys::encode_uri_component(s)
        .as_string()
        .unwrap_or_default()
}
