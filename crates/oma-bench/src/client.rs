//! One persistent HTTP/1.1 keep-alive connection, driven by hyper's connection-level client.
//!
//! Requests on a connection are strictly sequential (no pipelining), which is how SDK clients
//! behave: the latency of a request is the time from writing it to having read its whole body.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// What every request carries besides its method, path and body.
#[derive(Clone)]
pub struct Headers {
    host: HeaderValue,
    key: HeaderValue,
    json: HeaderValue,
}

impl Headers {
    pub fn new(addr: SocketAddr, key: &str) -> Result<Self> {
        Ok(Self {
            host: HeaderValue::from_str(&addr.to_string())?,
            key: HeaderValue::from_str(key).context("the API key is not a valid header value")?,
            json: HeaderValue::from_static("application/json"),
        })
    }

    /// Builds a request. `body` is sent with `content-type: application/json` when present.
    pub fn request(
        &self,
        method: Method,
        uri: Uri,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, self.host.clone())
            .header("x-api-key", self.key.clone());
        if body.is_some() {
            b = b.header(CONTENT_TYPE, self.json.clone());
        }
        Ok(b.body(Full::new(body.unwrap_or_default()))?)
    }
}

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects and performs the HTTP/1.1 handshake. The connection's I/O runs as a task of
    /// the current runtime and ends when this handle is dropped.
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        // Small request/response pairs: Nagle would add a delayed-ACK wait to each of them.
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // An error here surfaces on the next `send` as a closed connection.
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Sends a request and reads the whole response body without keeping it; returns the
    /// status and the body length.
    pub async fn send_drain(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, usize)> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                len += data.len();
            }
        }
        Ok((status, len))
    }

    /// Sends a request and returns the status and the body still to be read: for streams
    /// (SSE), which are read frame by frame as they arrive.
    pub async fn open_stream(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, hyper::body::Incoming)> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        Ok((resp.status(), resp.into_body()))
    }

    /// Sends a request and returns the status and the body.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A sequential JSON client for setting up fixtures and checking responses.
pub struct Api {
    conn: Conn,
    headers: Headers,
}

impl Api {
    pub async fn connect(addr: SocketAddr, key: &str) -> Result<Self> {
        Ok(Self {
            conn: Conn::open(addr).await?,
            headers: Headers::new(addr, key)?,
        })
    }

    /// Sends a request and parses the JSON response, failing on any status but 200.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let uri: Uri = path
            .parse()
            .with_context(|| format!("invalid path `{path}`"))?;
        let body = body.map(|b| Bytes::from(b.to_string()));
        let req = self.headers.request(method.clone(), uri, body)?;
        let (status, bytes) = self.conn.send(req).await?;
        if status != StatusCode::OK {
            bail!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{method} {path} did not answer JSON"))
    }

    /// POSTs `body` and returns the `id` of the created object.
    pub async fn create(&mut self, path: &str, body: &Value) -> Result<String> {
        let v = self.call(Method::POST, path, Some(body)).await?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("POST {path} answered without an `id`: {v}"))
    }
}
