//! A minimal HTTP/1.1 client over hyper (already in the tree through axum), and the demo
//! served on an ephemeral port.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, client::conn::http1::SendRequest, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tenantry::Registry;

/// Serves `tenantry_demo::app(registry, strict)` on 127.0.0.1:0; returns its address.
pub async fn spawn(registry: &Registry, strict: bool) -> SocketAddr {
    spawn_app(tenantry_demo::app(registry.clone(), strict)).await
}

/// Serves `app` on 127.0.0.1:0; returns its address.
pub async fn spawn_app(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One keep-alive connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client { sender, addr }
    }

    /// Sends one request; returns the status and the body parsed as JSON (`Null` if it is
    /// not JSON).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(tenant) = tenant {
            request = request.header("tenant", tenant);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await.unwrap();
        let response = self
            .sender
            .send_request(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&mut self, path: &str, tenant: Option<&str>) -> (u16, Value) {
        self.send(Method::GET, path, tenant, None).await
    }

    pub async fn post(&mut self, path: &str, tenant: Option<&str>, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, tenant, Some(body)).await
    }

    /// Sends raw bytes as the body of a POST (for malformed JSON).
    pub async fn post_raw(&mut self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}
