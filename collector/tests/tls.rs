//! TLS on both receivers (`--otlp-tls-cert`/`--otlp-tls-key`): spans sent over HTTPS and gRPC
//! with TLS land in ClickHouse, plain HTTP to the TLS port fails, and bad flags or files stop
//! the start with a message.

mod support;

use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use orrery_collector::synth;
use prost::Message;
use support::*;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// A self-signed certificate for localhost/127.0.0.1, written as PEM files; returns the cert PEM.
fn self_signed(dir: &Path) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("generate certificate");
    let cert = ck.cert.pem();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    cert
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_receivers_serve_tls_only() {
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = self_signed(dir.path());
    let ch = orrery_store::testing::fresh_database().await;
    let cert_flag = format!("--otlp-tls-cert={}", dir.path().join("cert.pem").display());
    let key_flag = format!("--otlp-tls-key={}", dir.path().join("key.pem").display());
    let c = Collector::start(&ch, &dir.path().join("spool"), &[&cert_flag, &key_flag]).await;
    let running = c.running.as_ref().unwrap();
    let (http_port, grpc_port) = (running.http_addr.port(), running.grpc_addr.port());

    // HTTPS, trusting only the self-signed certificate.
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = https
        .post(format!("https://localhost:{http_port}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(synth::request(1, 10, synth::now_ns()).encode_to_vec())
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        wait_count(&ch, "1", 10, Duration::from_secs(30)).await,
        10,
        "HTTPS spans stored"
    );

    // gRPC over TLS.
    let channel = Channel::from_shared(format!("https://127.0.0.1:{grpc_port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("gRPC TLS connect");
    let resp = TraceServiceClient::new(channel)
        .export(synth::request(2, 15, synth::now_ns()))
        .await
        .expect("gRPC export over TLS")
        .into_inner();
    assert!(resp.partial_success.is_none_or(|p| p.rejected_spans == 0));
    assert_eq!(
        wait_count(&ch, "1", 25, Duration::from_secs(30)).await,
        25,
        "gRPC spans stored"
    );

    // Plain text to either TLS port is refused.
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http_port}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(synth::request(3, 5, synth::now_ns()).encode_to_vec())
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP to the TLS port: {plain:?}");
    let plain_grpc = async {
        TraceServiceClient::connect(format!("http://127.0.0.1:{grpc_port}"))
            .await?
            .export(synth::request(4, 5, synth::now_ns()))
            .await
            .map_err(Into::<Box<dyn std::error::Error>>::into)
    };
    let plain_grpc = tokio::time::timeout(Duration::from_secs(10), plain_grpc).await;
    assert!(
        !matches!(plain_grpc, Ok(Ok(_))),
        "plaintext gRPC to the TLS port must not succeed"
    );

    c.stop().await;
    assert_eq!(count(&ch, "1").await, 25, "nothing from plain-text clients");
}

async fn start_error(spool: &Path, extra: &[&str]) -> String {
    let ch = orrery_store::ClickHouseArgs::for_url("http://127.0.0.1:9", "unused");
    match orrery_collector::start(args(spool, extra), ch, CancellationToken::new()).await {
        Ok(_) => panic!("collector started with {extra:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn bad_tls_flags_and_files_are_rejected_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let spool = dir.path().join("spool");
    let cert = format!("--otlp-tls-cert={}", dir.path().join("cert.pem").display());
    let key = format!("--otlp-tls-key={}", dir.path().join("key.pem").display());

    for flags in [[cert.as_str()], [key.as_str()]] {
        let e = start_error(&spool, &flags).await;
        assert!(e.contains("must be given together"), "{e}");
    }

    let missing = format!("--otlp-tls-key={}", dir.path().join("nope.pem").display());
    let e = start_error(&spool, &[&cert, &missing]).await;
    assert!(
        e.contains("reading TLS key") && e.contains("nope.pem"),
        "{e}"
    );

    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let junk = format!("--otlp-tls-cert={}", dir.path().join("junk.pem").display());
    let e = start_error(&spool, &[&junk, &key]).await;
    assert!(e.contains("no PEM certificate"), "{e}");

    // A key that is not the certificate's.
    let other = tempfile::tempdir().unwrap();
    self_signed(other.path());
    let other_key = format!("--otlp-tls-key={}", other.path().join("key.pem").display());
    let e = start_error(&spool, &[&cert, &other_key]).await;
    assert!(e.contains("do not form a usable pair"), "{e}");
}
