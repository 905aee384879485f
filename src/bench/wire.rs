//! The load generator's gRPC client: unary calls straight on an HTTP/2 connection (the `h2`
//! crate, which tonic itself runs on), with each request's message encoded before the clock
//! starts.
//!
//! The benchmark shares a 2-core machine with the server it measures, so every microsecond the
//! client spends is taken from the server. tonic's client puts a buffer task between the caller
//! and the connection (one more task hand-off per call) and decodes every response into
//! messages; this one sends the encoded request, reads the response's frames and checks its
//! `grpc-status`, at about a third of the CPU per call. OpenBao's side of the comparison is
//! driven by wrk, which is as lean.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, Uri, header};
use tokio::net::TcpStream;

/// One HTTP/2 connection to a gRPC server.
pub(super) struct Connection {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
    authorization: HeaderValue,
}

impl Connection {
    /// Connects to `endpoint` (`http://host:port`) and sends `token` as the bearer of every call.
    pub(super) async fn open(endpoint: &str, token: &str) -> Result<Self, String> {
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| {
                format!("the benchmark speaks plain HTTP/2 only: use http://host:port, not {endpoint}")
            })?
            .trim_end_matches('/')
            .to_owned();
        let tcp =
            TcpStream::connect(&authority).await.map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        let (send, connection) = h2::client::handshake(tcp)
            .await
            .map_err(|e| format!("HTTP/2 handshake with {endpoint} failed: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "benchmark connection ended");
            }
        });
        let mut authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "the token holds characters a header cannot carry".to_owned())?;
        authorization.set_sensitive(true);
        Ok(Self { send, authority, authorization })
    }

    /// The URI of the method at `path` (e.g. `/credvault.v1.CredentialService/Get`) on this
    /// connection's server, built once per client rather than once per call.
    pub(super) fn uri(&self, path: &str) -> Result<Uri, String> {
        format!("http://{}{path}", self.authority).parse().map_err(|e| format!("bad method path {path}: {e}"))
    }

    /// Calls the method at `uri` (from [`Connection::uri`]) with `message`, already framed by
    /// [`frame`]. Ok means grpc-status 0 and one whole response message.
    pub(super) async fn call(&mut self, uri: &Uri, message: Bytes) -> Result<(), String> {
        let request = Request::post(uri.clone())
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .header(header::AUTHORIZATION, self.authorization.clone())
            .body(())
            .map_err(|e| format!("bad request: {e}"))?;
        let send = self.send.clone();
        let mut send = send.ready().await.map_err(|e| format!("connection lost: {e}"))?;
        let (response, mut stream) =
            send.send_request(request, false).map_err(|e| format!("send failed: {e}"))?;
        stream.send_data(message, true).map_err(|e| format!("send failed: {e}"))?;
        let response = response.await.map_err(|e| format!("no response: {e}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status()));
        }
        // A failed call may answer with headers only ("trailers-only").
        if let Some(status) = response.headers().get("grpc-status") {
            return grpc_status(status);
        }
        let mut body = response.into_body();
        let mut received = 0usize;
        let mut declared = None;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| format!("response broken off: {e}"))?;
            if declared.is_none() && chunk.len() >= 5 {
                declared = Some(5 + u32::from_be_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]) as usize);
            }
            received += chunk.len();
            body.flow_control().release_capacity(chunk.len()).map_err(|e| format!("flow control: {e}"))?;
        }
        let trailers = body.trailers().await.map_err(|e| format!("response broken off: {e}"))?;
        let status =
            trailers.as_ref().and_then(|t| t.get("grpc-status")).ok_or("no grpc-status in the trailers")?;
        grpc_status(status)?;
        match declared {
            Some(length) if length == received => Ok(()),
            _ => Err(format!("expected one whole message, got {received} bytes")),
        }
    }
}

fn grpc_status(status: &HeaderValue) -> Result<(), String> {
    match status.as_bytes() {
        b"0" => Ok(()),
        other => Err(format!("grpc-status {}", String::from_utf8_lossy(other))),
    }
}

/// `message` as a gRPC length-prefixed frame (uncompressed).
pub(super) fn frame(message: &impl prost::Message) -> Bytes {
    let length = message.encoded_len();
    let mut framed = BytesMut::with_capacity(5 + length);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(length).expect("a benchmark request is far under 4 GiB"));
    message.encode(&mut framed).expect("a BytesMut grows as needed");
    framed.freeze()
}
