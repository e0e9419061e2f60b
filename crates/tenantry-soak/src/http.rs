//! A minimal HTTP/1.1 client (hyper, already in the tree through axum) for the demo's API.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, client::conn::http1::SendRequest, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One keep-alive connection; reconnects after a transport error.
pub struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// A response: the status and the body parsed as JSON (`Null` if it is not JSON).
pub type Response = (u16, Value);

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if !matches!(&self.sender, Some(s) if !s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| "no connection".to_owned())
    }

    /// Sends one request with an optional `tenant` header and JSON body. A transport error
    /// drops the connection (the next request opens a new one).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> Result<Response, String> {
        let result = self.try_send(method, path, tenant, body).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_send(
        &mut self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> Result<Response, String> {
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
        let request = request.body(body).map_err(|e| e.to_string())?;
        let sender = self.sender().await?;
        sender.ready().await.map_err(|e| format!("ready: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    pub async fn get(&mut self, path: &str, tenant: Option<&str>) -> Result<Response, String> {
        self.send(Method::GET, path, tenant, None).await
    }

    pub async fn post(
        &mut self,
        path: &str,
        tenant: Option<&str>,
        body: Value,
    ) -> Result<Response, String> {
        self.send(Method::POST, path, tenant, Some(body)).await
    }
}
