//! A stand-in for ClickHouse, only for failures the real engine cannot produce on demand: a
//! proxy in front of the real embedded engine that answers ClickHouse's code 252 for inserts
//! containing a poison marker (and forwards everything else), or a server that accepts
//! requests and never answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
pub enum Mode {
    /// Forward to `upstream` (the real engine's endpoint, no credentials in it), except inserts
    /// whose body contains `poison`: those get code 252 (too many partitions), as a real server
    /// would answer a batch over too many days.
    Poison { upstream: String, poison: Vec<u8> },
    /// Accept, read nothing, never answer.
    Hang,
    /// Forward everything but inserts to `upstream`; answer inserts 200 with `written_rows` 0
    /// and store nothing (what chDB's streaming insert did with a refused block).
    SilentDrop { upstream: String },
}

pub struct Fake {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// Requests received.
    pub requests: Arc<AtomicUsize>,
    /// Inserts refused with 252.
    pub refused: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct St {
    mode: Mode,
    requests: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    http: reqwest::Client,
}

pub async fn start(mode: Mode) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let st = St {
        mode,
        requests: Arc::default(),
        refused: Arc::default(),
        http: reqwest::Client::new(),
    };
    let fake = Fake {
        url,
        requests: st.requests.clone(),
        refused: st.refused.clone(),
    };
    let app = axum::Router::new().fallback(handle).with_state(st);
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

async fn handle(State(st): State<St>, req: Request) -> Response {
    st.requests.fetch_add(1, Ordering::SeqCst);
    let (upstream, poison, drop_inserts) = match &st.mode {
        Mode::Hang => std::future::pending().await,
        Mode::Poison { upstream, poison } => (upstream.clone(), poison.clone(), false),
        Mode::SilentDrop { upstream } => (upstream.clone(), Vec::new(), true),
    };
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if drop_inserts && pq.contains("INSERT") {
        st.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::OK,
            [(
                "X-ClickHouse-Summary",
                r#"{"read_rows":"0","read_bytes":"0","written_rows":"0","written_bytes":"0","total_rows_to_read":"0","result_rows":"0","result_bytes":"0","elapsed_ns":"1000"}"#,
            )],
            "",
        )
            .into_response();
    }
    if !poison.is_empty()
        && pq.contains("INSERT")
        && body.windows(poison.len()).any(|w| w == &poison[..])
    {
        st.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("X-ClickHouse-Exception-Code", "252")],
            "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). \
             The limit is controlled by 'max_partitions_per_insert_block' setting. (TOO_MANY_PARTS)",
        )
            .into_response();
    }
    let mut fwd = st
        .http
        .request(parts.method.clone(), format!("{upstream}{pq}"))
        .body(body);
    for (k, v) in &parts.headers {
        if k.as_str().starts_with("x-clickhouse") || k == "content-type" || k == "authorization" {
            fwd = fwd.header(k, v);
        }
    }
    let r = match fwd.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(r.status().as_u16());
    for (k, v) in r.headers() {
        if k.as_str().starts_with("x-clickhouse") || k == "content-type" {
            out = out.header(k, v);
        }
    }
    out.body(Body::from(r.bytes().await.unwrap_or_default()))
        .unwrap()
}
