//! The HTTP client under the MCP client: one connection, and each call's own bearer token.
//!
//! rmcp's streamable HTTP client sends one `Authorization` header, set when the connection is
//! made, with every request. Warden calls do not share a credential: a read carries its task's
//! token, a write a per-call token minted for it alone. One connection per call would work but
//! pay a session handshake per call, so this client wraps reqwest's and, for a `tools/call`
//! request that carries a [`CallBearer`] in its (never serialized) extensions, sends that token
//! instead of the connection's. Everything else (initialization, `tools/list`, the event stream,
//! closing the session) goes with the connection's token, and every method delegates to reqwest's
//! implementation, size limits included.

use agent_core::Credential;
use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;
use std::collections::HashMap;
use std::sync::Arc;

/// The bearer one `tools/call` request must carry, in the request's extensions.
#[derive(Clone)]
pub(crate) struct CallBearer(pub(crate) Credential);

/// reqwest, with a bearer per call. See the module documentation.
#[derive(Clone)]
pub(crate) struct PerCallBearerClient {
    inner: reqwest::Client,
}

impl PerCallBearerClient {
    /// A client that follows no redirects: a redirect would carry a token to another place.
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // As rmcp's own default client: an idle pooled connection whose last response was
            // not fully read can stall the next request for a delayed ACK (~40 ms).
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Self { inner })
    }
}

/// The request's own bearer for a `tools/call` (the call's credential) or a `tools/list` (a fresh
/// listing token) that carries one, else the connection's.
fn bearer_for(message: &ClientJsonRpcMessage, connection: Option<String>) -> Option<String> {
    let JsonRpcMessage::Request(request) = message else { return connection };
    let extensions = match &request.request {
        ClientRequest::CallToolRequest(call) => &call.extensions,
        ClientRequest::ListToolsRequest(list) => &list.extensions,
        _ => return connection,
    };
    match extensions.get::<CallBearer>() {
        Some(CallBearer(credential)) => Some(credential.expose().to_owned()),
        None => connection,
    }
}

impl StreamableHttpClient for PerCallBearerClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let auth_header = bearer_for(&message, auth_header);
        self.inner.post_message(uri, message, session_id, auth_header, custom_headers).await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let auth_header = bearer_for(&message, auth_header);
        self.inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let auth_header = bearer_for(&message, auth_header);
        self.inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.inner.delete_session(uri, session_id, auth_header, custom_headers).await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner.get_stream(uri, session_id, last_event_id, auth_header, custom_headers).await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
