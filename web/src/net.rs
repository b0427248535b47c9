//! Same-origin JSON fetches (relative URLs, so the UI works behind any host/port).

use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    let body = get_bytes(url).await?;
    serde_json::from_slice(&body).map_err(|e| format!("unexpected response: {e}"))
}

/// The body of a 2xx response, otherwise the API's `{"error": ...}` message. As bytes: copied
/// once into WASM memory, where `text()` would decode UTF-8 to a JS string and encode it back.
pub async fn get_bytes(url: &str) -> Result<Vec<u8>, String> {
    let w = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(w.fetch_with_str(url))
        .await
        .map_err(|e| format!("network error: {e:?}"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "bad response")?;
    let buf = JsFuture::from(resp.array_buffer().map_err(|_| "no body")?)
        .await
        .map_err(|_| "no body")?;
    let body = js_sys::Uint8Array::new(&buf).to_vec();
    if !resp.ok() {
        let msg = serde_json::from_slice::<crate::api::ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(format!("HTTP {}: {msg}", resp.status()));
    }
    Ok(body)
}

pub fn enc(s: &str) -> String {
    js_sys::encode_uri_component(s)
        .as_string()
        .unwrap_or_default()
}
