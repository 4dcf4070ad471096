//! Connections a client opens and then holds without using them are closed
//! on time, while a caller who asks for something is served: the first-byte
//! and header deadlines, the idle limit (HTTP/1 keep-alive and HTTP/2
//! cleartext alike) and the connection cap, on a real listener.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use orderflow_http::{serve_with, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Server {
    url: String,
    addr: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                // A body that takes longer than the idle limit to send.
                let chunks = futures::stream::unfold(0, |i| async move {
                    if i == 4 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Some((Ok::<_, std::io::Error>(format!("chunk {i}\n")), i + 1))
                });
                axum::body::Body::from_stream(chunks)
            }),
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve_with(
            listener,
            router,
            limits,
            stop.clone().cancelled_owned(),
        ));
        Self {
            url: format!("http://{addr}"),
            addr,
            stop,
            task,
        }
    }

    /// A normal caller on a connection of its own gets an answer.
    async fn serves_a_caller(&self) {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let response = client.get(&self.url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn quick() -> Limits {
    Limits {
        first_byte: Duration::from_millis(400),
        header_read: Duration::from_millis(400),
        idle: Duration::from_millis(600),
        ..Default::default()
    }
}

/// Reads until the server closes, and how long that took (at most 10 s).
async fn closed_after(stream: &mut TcpStream) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open for 10 s");
    (start.elapsed(), got)
}

/// Asks once on a kept-alive HTTP/1 connection, then waits: how long the
/// server took to close it after the answer.
async fn closed_after_one_request(server: &Server) -> Duration {
    let mut kept = TcpStream::connect(&server.addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    closed_after(&mut kept).await.0
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_first_byte_deadline() {
    let server = Server::start(quick()).await;
    let mut silent = TcpStream::connect(&server.addr).await.unwrap();
    let mut half_preface = TcpStream::connect(&server.addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2").await.unwrap();
    server.serves_a_caller().await;
    for stream in [&mut silent, &mut half_preface] {
        let (took, got) = closed_after(stream).await;
        assert!(got.is_empty(), "closed without a word");
        assert!(took < Duration::from_secs(3), "closed after {took:?}");
    }
    server.serves_a_caller().await;
    server.stop().await;
}

#[tokio::test]
async fn a_header_sent_a_byte_at_a_time_is_cut_off_at_the_deadline() {
    let server = Server::start(quick()).await;
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    let start = Instant::now();
    let mut closed = false;
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !closed {
        let (_, got) = closed_after(&mut slow).await;
        assert!(
            !String::from_utf8_lossy(&got).contains("200 OK"),
            "never answered"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "cut off after {:?}",
        start.elapsed()
    );
    server.serves_a_caller().await;
    server.stop().await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed() {
    let server = Server::start(quick()).await;
    let took = closed_after_one_request(&server).await;
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    server.stop().await;
}

/// hyper starts the HTTP/1 header deadline as soon as a kept-alive
/// connection waits for its next request, so such a connection is closed
/// at the header deadline, well before the idle limit.
#[tokio::test]
async fn a_kept_alive_http1_connection_is_closed_at_the_header_deadline() {
    let server = Server::start(Limits {
        header_read: Duration::from_millis(400),
        idle: Duration::from_secs(8),
        ..Default::default()
    })
    .await;
    let took = closed_after_one_request(&server).await;
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    server.stop().await;
}

/// A pooled client that sends on a connection the server is closing gets
/// "error sending request" (the gateway answered 503 so when its
/// connection to the order service had been idle for the header deadline):
/// orderflow's clients give an idle connection up before any server does.
#[test]
fn clients_give_up_idle_connections_before_servers_close_them() {
    let server = Limits::default();
    let closes_idle_at = server.header_read.min(server.idle);
    assert!(
        orderflow_http::CLIENT_POOL_IDLE * 2 <= closes_idle_at,
        "clients keep idle connections {:?}, servers close them at {closes_idle_at:?}",
        orderflow_http::CLIENT_POOL_IDLE
    );
}

#[tokio::test]
async fn an_idle_h2c_connection_is_closed() {
    let server = Server::start(quick()).await;
    let mut h2 = TcpStream::connect(&server.addr).await.unwrap();
    // The preface and an empty SETTINGS frame: a real HTTP/2 connection
    // that then opens no stream.
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    server.serves_a_caller().await;
    let (took, got) = closed_after(&mut h2).await;
    assert!(
        got.len() >= 9 && got[3] == 4,
        "the server answered with its SETTINGS"
    );
    // GOAWAY (type 7) before it closed.
    assert!(
        got.windows(4).any(|w| w[3] == 7 && w[0] == 0),
        "a GOAWAY was sent"
    );
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_response_that_takes_longer_than_the_idle_limit_is_not_cut() {
    let server = Server::start(quick()).await;
    let body = reqwest::get(format!("{}/slow", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    server.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_is_closed_at_once() {
    let server = Server::start(Limits {
        first_byte: Duration::from_secs(30),
        max_connections: 3,
        ..Default::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&server.addr).await.unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (took, got) = closed_after(&mut extra).await;
    assert!(
        got.is_empty() && took < Duration::from_secs(2),
        "refused at once"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.serves_a_caller().await;
    server.stop().await;
}
