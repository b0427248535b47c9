//! Fetching a trace as a stream: the body is read chunk by chunk (same headers and 401 rule as
//! `net.rs`), and once the first `PREFIX_BYTES` are in while more is coming, `on_prefix` gets
//! them — the trace page draws the first rows from them (`trace_prefix.rs`) while the rest of
//! a big answer downloads. A small answer arrives whole and `on_prefix` is never called.

use crate::net::{FetchError, js_message};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Enough for the header and a first screen of rows (a span is ~350 bytes).
pub const PREFIX_BYTES: usize = 64 * 1024;

/// The whole body of a 2xx answer (else the API's error message); `on_prefix` once with the
/// first ≥ `PREFIX_BYTES` bytes when the answer is bigger than that, and `on_painted` once
/// the frame after it is on screen.
pub async fn get_streamed(
    url: &str,
    mut on_prefix: impl FnMut(&[u8]),
    on_painted: impl FnOnce(),
) -> Result<Vec<u8>, String> {
    let mut on_painted = Some(on_painted);
    let token = crate::auth::token();
    let resp = JsFuture::from(crate::net::request(url, token.as_deref(), None)?)
        .await
        .map_err(|e| format!("network error: {}", js_message(&e)))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "bad response".to_string())?;
    let status = resp.status();
    if status == 401 {
        crate::auth::unauthorized(token.as_deref());
        return Err(FetchError::Unauthorized.into());
    }
    let Some(body) = resp.body() else {
        return Err("no body".into());
    };
    // Content-Length, when sent, sizes the buffer once (18 MB for 50,000 spans).
    let size = resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut buf: Vec<u8> = Vec::with_capacity(size.min(1 << 30));
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut told = false;
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("network error: {}", js_message(&e)))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        if let Ok(v) = js_sys::Reflect::get(&chunk, &"value".into()) {
            let bytes: js_sys::Uint8Array = v.unchecked_into();
            let at = buf.len();
            buf.resize(at + bytes.length() as usize, 0);
            bytes.copy_to(&mut buf[at..]);
        }
        if !told
            && status / 100 == 2
            && buf.len() >= PREFIX_BYTES
            && (size == 0 || buf.len() < size)
        {
            told = true;
            on_prefix(&buf);
            // Let the browser render and paint those rows before reading (and then parsing)
            // the rest: awaiting chunks already buffered only runs microtasks, which never
            // yield to rendering.
            next_paint().await;
            if let Some(f) = on_painted.take() {
                f();
            }
        }
    }
    if !(200..300).contains(&status) {
        let msg = serde_json::from_slice::<crate::api::ApiError>(&buf)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&buf).into_owned());
        return Err(format!("HTTP {status}: {msg}"));
    }
    Ok(buf)
}

/// Resolves after the next frame is rendered (an animation frame, then a task), so the DOM
/// changes made before it are on screen.
async fn next_paint() {
    let Some(w) = web_sys::window() else {
        return;
    };
    let frame = js_sys::Promise::new(&mut |resolve, _| {
        let _ = w.request_animation_frame(&resolve);
    });
    let _ = JsFuture::from(frame).await;
    let task = js_sys::Promise::new(&mut |resolve, _| {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
    });
    let _ = JsFuture::from(task).await;
}
