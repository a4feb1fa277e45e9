//! The Anthropic Messages API client: the [`Model`] that talks to real Claude over HTTPS.
//!
//! Everything that can go wrong on the way to the API ends here as a [`ModelError`], so the agent
//! loop never sees HTTP. Transient failures (rate limits, overload, server errors, a dropped
//! connection) are retried with exponential backoff and jitter; a request the API rejected is
//! never retried, because sending it again would be rejected again. The whole exchange, waits
//! included, is bounded by one total timeout, so a stuck API cannot stall an agent forever.
//!
//! The API key is a secret: it is sent only in the `x-api-key` header (marked sensitive), never
//! follows a redirect, and is redacted from `Debug` output and error messages.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;

use super::{Model, ModelError, ModelRequest, ModelResponse};

/// The API version this client speaks.
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The public API, used when no base URL is configured.
const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// How long one attempt may take to open a connection before it counts as a transport failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a non-JSON error body goes into the error message.
const ERROR_EXCERPT_CHARS: usize = 200;

/// How to reach the Messages API.
///
/// Build it with [`AnthropicConfig::from_env`] (the usual way) or [`AnthropicConfig::new`], then
/// adjust the public fields. `Debug` prints the key as `[redacted]`.
#[derive(Clone)]
pub struct AnthropicConfig {
    /// The secret API key, sent as `x-api-key`.
    pub api_key: String,
    /// The API's address without the path, such as `https://api.anthropic.com`.
    pub base_url: String,
    /// The model id sent with every request, such as `claude-sonnet-5`.
    pub model: String,
    /// The longest one [`Model::respond`] may take, retries and waits included.
    pub total_timeout: Duration,
    /// When and how often to retry transient failures.
    pub retry: RetryPolicy,
}

impl AnthropicConfig {
    /// A configuration for the public API with the default timeout and retry policy.
    pub fn new(api_key: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: model.into(),
            total_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
        }
    }

    /// Reads the key from `ANTHROPIC_API_KEY` and, when set, the address from
    /// `ANTHROPIC_BASE_URL`.
    ///
    /// The model id comes from the caller's configuration: ids move fast, so none is built in.
    ///
    /// # Errors
    ///
    /// [`ModelError::MissingApiKey`] when `ANTHROPIC_API_KEY` is unset or empty.
    pub fn from_env(model: impl Into<String>) -> Result<Self, ModelError> {
        Self::from_lookup(model, |name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable lookup, so it can be tested without touching the
    /// process environment.
    fn from_lookup(
        model: impl Into<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ModelError> {
        let api_key = lookup("ANTHROPIC_API_KEY")
            .filter(|key| !key.trim().is_empty())
            .ok_or(ModelError::MissingApiKey)?;
        let mut config = Self::new(api_key.trim(), model);
        if let Some(base_url) = lookup("ANTHROPIC_BASE_URL").filter(|url| !url.trim().is_empty()) {
            config.base_url = base_url.trim().to_owned();
        }
        Ok(config)
    }
}

impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("api_key", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("total_timeout", &self.total_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// When to retry a transient failure: rate limits (429), server errors (500, 502, 503, 504),
/// overload (529) and transport failures.
///
/// The wait before retry `n` (counting from 0) is `initial_backoff * 2^n`, capped at
/// `max_backoff`, minus a random jitter of up to half of it so that many agents do not retry in
/// step. A `retry-after` header, when the API sends one, replaces that wait (still capped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times to retry after the first attempt; 0 never retries.
    pub max_retries: u32,
    /// The wait before the first retry, before jitter.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `retry` (counting from 0), or what the server asked for.
    fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_backoff);
        }
        let factor = 2u32.saturating_pow(retry);
        let ceiling = self.initial_backoff.saturating_mul(factor).min(self.max_backoff);
        let half_millis = u64::try_from(ceiling.as_millis() / 2).unwrap_or(u64::MAX);
        ceiling.saturating_sub(Duration::from_millis(fastrand::u64(0..=half_millis)))
    }
}

/// A [`Model`] that sends each request to the Anthropic Messages API.
///
/// The configured model id is the one sent, whatever [`ModelRequest::model`] says, so that what
/// [`Model::describe`] reports in the audit log is what answered.
#[derive(Debug, Clone)]
pub struct AnthropicClient {
    config: AnthropicConfig,
    http: reqwest::Client,
    endpoint: String,
}

impl AnthropicClient {
    /// A client for `config`.
    ///
    /// # Errors
    ///
    /// [`ModelError::MissingApiKey`] when the key is empty, [`ModelError::Transport`] when the
    /// key cannot be sent as a header or the HTTP client cannot be built.
    pub fn new(config: AnthropicConfig) -> Result<Self, ModelError> {
        if config.api_key.trim().is_empty() {
            return Err(ModelError::MissingApiKey);
        }
        let mut key = HeaderValue::from_str(&config.api_key).map_err(|_| {
            ModelError::Transport("the API key is not a valid HTTP header value".to_owned())
        })?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", key);
        headers.insert("anthropic-version", HeaderValue::from_static(ANTHROPIC_VERSION));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            // Never follow a redirect: it would carry the key to wherever the response points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT.min(config.total_timeout))
            .build()
            .map_err(|error| ModelError::Transport(describe_transport_error(error, &config)))?;
        let endpoint = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        Ok(Self { config, http, endpoint })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &AnthropicConfig {
        &self.config
    }

    /// All attempts, with the waits between them; the caller bounds the total time.
    async fn exchange(
        &self,
        body: &[u8],
        deadline: Option<Instant>,
    ) -> Result<ModelResponse, ModelError> {
        let policy = &self.config.retry;
        let mut retry = 0;
        loop {
            let (error, retry_after) = match self.attempt(body).await {
                Ok(response) => return Ok(response),
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Transient { error, retry_after }) => (error, retry_after),
            };
            if retry >= policy.max_retries {
                tracing::warn!(%error, attempts = retry + 1, "model request failed, no retries left");
                return Err(error);
            }
            let wait = policy.wait(retry, retry_after);
            // A wait that would outlast the deadline only turns a clear error into a timeout.
            let wait_ends = Instant::now().checked_add(wait);
            if deadline.is_some_and(|deadline| wait_ends.is_none_or(|end| end >= deadline)) {
                tracing::warn!(%error, ?wait, "model request failed, no time left to retry");
                return Err(error);
            }
            tracing::warn!(%error, ?wait, retry = retry + 1, "model request failed, retrying");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// One HTTP request and its classified outcome.
    async fn attempt(&self, body: &[u8]) -> Result<ModelResponse, Failure> {
        let sent = self.http.post(&self.endpoint).body(body.to_vec()).send().await;
        let response = sent.map_err(|error| self.transport_failure(error))?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let retry_after = response.headers().get(RETRY_AFTER).and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(|error| self.transport_failure(error))?;

        if !status.is_success() {
            let error = api_error(status, &bytes, request_id);
            return Err(if is_retryable(status) {
                Failure::Transient { error, retry_after }
            } else {
                Failure::Final(error)
            });
        }
        let mut parsed = parse_messages_response(&bytes).map_err(Failure::Final)?;
        tracing::debug!(
            request_id = request_id.as_deref().unwrap_or("-"),
            stop_reason = parsed.stop_reason.as_str(),
            input_tokens = parsed.usage.input_tokens,
            output_tokens = parsed.usage.output_tokens,
            "model answered"
        );
        parsed.request_id = request_id;
        Ok(parsed)
    }

    /// Every transport failure is worth another try: it says nothing about the request itself.
    fn transport_failure(&self, error: reqwest::Error) -> Failure {
        let error = ModelError::Transport(describe_transport_error(error, &self.config));
        Failure::Transient { error, retry_after: None }
    }
}

#[async_trait]
impl Model for AnthropicClient {
    async fn respond(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let body = request_body(request, &self.config.model)?;
        let total = self.config.total_timeout;
        // No deadline only when `total` is too long for the clock to represent.
        let deadline = Instant::now().checked_add(total);
        match tokio::time::timeout(total, self.exchange(&body, deadline)).await {
            Ok(result) => result,
            Err(_elapsed) => {
                tracing::warn!(?total, "model request timed out");
                Err(ModelError::Timeout(total))
            }
        }
    }

    fn describe(&self) -> String {
        self.config.model.clone()
    }
}

/// How one attempt failed.
enum Failure {
    /// Worth another try, after `retry_after` if the server said so.
    Transient { error: ModelError, retry_after: Option<Duration> },
    /// Trying again would fail the same way.
    Final(ModelError),
}

/// The JSON body of `request`, with the configured model id.
fn request_body(request: &ModelRequest, model: &str) -> Result<Vec<u8>, ModelError> {
    let mut body = serde_json::to_value(request)
        .map_err(|error| ModelError::Other(format!("could not encode the request: {error}")))?;
    if let Value::Object(fields) = &mut body {
        fields.insert("model".to_owned(), Value::String(model.to_owned()));
    }
    serde_json::to_vec(&body)
        .map_err(|error| ModelError::Other(format!("could not encode the request: {error}")))
}

/// Rate limits, overload and server-side failures pass; anything else the API refused will be
/// refused again.
fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504 | 529)
}

/// `retry-after` in seconds (whole or fractional); an HTTP date is ignored in favour of backoff.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// The API's error, from its JSON body when it has one, else from the status and a body excerpt.
fn api_error(status: StatusCode, body: &[u8], request_id: Option<String>) -> ModelError {
    let detail = serde_json::from_slice::<Value>(body).ok().and_then(|value| {
        let error = value.get("error")?;
        let kind = error.get("type")?.as_str()?.to_owned();
        let message = error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        Some((kind, message))
    });
    let (kind, message) = detail.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let excerpt: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut excerpt: String = excerpt.chars().take(ERROR_EXCERPT_CHARS).collect();
        if excerpt.is_empty() {
            excerpt = status.canonical_reason().unwrap_or("no body").to_lowercase();
        }
        ("http_error".to_owned(), excerpt)
    });
    ModelError::Api { status: status.as_u16(), kind, message, request_id }
}

/// A 2xx body that must be a Messages response.
fn parse_messages_response(body: &[u8]) -> Result<ModelResponse, ModelError> {
    let malformed = |why: String| ModelError::MalformedResponse(why);
    let value: Value =
        serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
    match value.get("type").and_then(Value::as_str) {
        None | Some("message") => {}
        Some(other) => return Err(malformed(format!("expected a message, got `{other}`"))),
    }
    serde_json::from_value(value).map_err(|error| malformed(error.to_string()))
}

/// A transport error with its causes, without the URL and without the key.
fn describe_transport_error(error: reqwest::Error, config: &AnthropicConfig) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // The key is never put in a URL or message; this is the belt to those braces.
    if !config.api_key.is_empty() {
        text = text.replace(&config.api_key, "[redacted]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
    }

    #[test]
    fn from_env_requires_a_key() {
        let missing = AnthropicConfig::from_lookup("claude-sonnet-5", lookup(&[]));
        assert_eq!(missing.unwrap_err(), ModelError::MissingApiKey);
        let empty =
            AnthropicConfig::from_lookup("claude-sonnet-5", lookup(&[("ANTHROPIC_API_KEY", " ")]));
        assert_eq!(empty.unwrap_err(), ModelError::MissingApiKey);
    }

    #[test]
    fn from_env_reads_key_and_base_url() {
        let config = AnthropicConfig::from_lookup(
            "claude-haiku-4-5",
            lookup(&[
                ("ANTHROPIC_API_KEY", "sk-test"),
                ("ANTHROPIC_BASE_URL", "http://proxy:8080"),
            ]),
        )
        .unwrap();
        assert_eq!(config.api_key, "sk-test");
        assert_eq!(config.base_url, "http://proxy:8080");
        assert_eq!(config.model, "claude-haiku-4-5");
        assert_eq!(config.total_timeout, Duration::from_secs(120));
        assert_eq!(config.retry, RetryPolicy::default());

        let default_url =
            AnthropicConfig::from_lookup("m", lookup(&[("ANTHROPIC_API_KEY", "sk-test")])).unwrap();
        assert_eq!(default_url.base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn debug_redacts_the_key() {
        let config = AnthropicConfig::new("sk-ant-very-secret", "claude-sonnet-5");
        let client = AnthropicClient::new(config.clone()).unwrap();
        for printed in [format!("{config:?}"), format!("{client:?}")] {
            assert!(!printed.contains("sk-ant-very-secret"), "{printed}");
        }
        assert!(format!("{config:?}").contains("[redacted]"));
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let first = policy.wait(0, None);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.wait(2, None);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(policy.wait(30, None) <= Duration::from_secs(1));
            assert!(policy.wait(u32::MAX, None) >= Duration::from_millis(500));
        }
        assert_eq!(policy.wait(0, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(policy.wait(0, Some(Duration::from_secs(60))), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        let parse = |text: &str| parse_retry_after(&HeaderValue::from_str(text).unwrap());
        assert_eq!(parse("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse("-1"), None);
    }

    #[test]
    fn empty_key_is_refused() {
        let error = AnthropicClient::new(AnthropicConfig::new("", "m")).unwrap_err();
        assert_eq!(error, ModelError::MissingApiKey);
    }
}
