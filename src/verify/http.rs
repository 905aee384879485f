//! The shared HTTP client, with bounded retries for transient failures.

use std::time::Duration;

use reqwest::{Client, Request, StatusCode};

use crate::domain::Verification;

#[derive(Clone)]
pub(super) struct Http {
    client: Client,
    retries: u32,
    /// The longest a provider's `Retry-After` may ask to wait: the verification's time limit.
    max_wait: Duration,
}

/// A provider's answer: status and body (bodies are small; they are read whole).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: bytes::Bytes,
}

impl Http {
    pub(super) fn new(retries: u32, max_wait: Duration) -> Result<Self, String> {
        let client = Client::builder()
            .user_agent(concat!("credvault/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            // Never follow a redirect with credentials in the request.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client, retries, max_wait })
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Sends the request `build` makes (again for each attempt), retrying connection failures,
    /// 429 and 5xx with backoff; a 429's `Retry-After` (in seconds) is waited instead, or, if it
    /// asks for longer than the verification may take, not retried. Any other answer is
    /// returned as is. On giving up, the error is an `Unreachable` verification naming what
    /// failed, never the request's contents.
    pub(super) async fn send(
        &self,
        provider: &str,
        mut build: impl FnMut() -> Result<Request, Verification>,
    ) -> Result<Answer, Verification> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = build()?;
            let mut retry_after = None;
            let failure = match self.client.execute(request).await {
                Ok(response) => {
                    let status = response.status();
                    let transient = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        retry_after = retry_after_secs(response.headers());
                    }
                    match response.bytes().await {
                        Ok(body) if !transient => return Ok(Answer { status, body }),
                        Ok(_) => match retry_after {
                            Some(wait) => format!(
                                "{provider} is limiting requests (HTTP 429, retry after {} s)",
                                wait.as_secs()
                            ),
                            None => format!("{provider} answered HTTP {}", status.as_u16()),
                        },
                        Err(e) => format!("{provider}'s answer broke off ({})", kind(&e)),
                    }
                }
                Err(e) => format!("could not reach {provider} ({})", kind(&e)),
            };
            if retry_after.is_some_and(|wait| wait > self.max_wait) {
                return Err(Verification::unreachable(format!(
                    "{failure}, longer than a verification may take; nothing was concluded about the credential"
                ))
                .asking_to_wait(retry_after));
            }
            if attempt > self.retries {
                let tries = if attempt == 1 { String::new() } else { format!(" after {attempt} attempts") };
                return Err(Verification::unreachable(format!(
                    "{failure}{tries}; nothing was concluded about the credential"
                ))
                .asking_to_wait(retry_after));
            }
            tracing::debug!(attempt, failure = %failure, "transient provider failure; retrying");
            tokio::time::sleep(retry_after.unwrap_or(delay)).await;
            delay *= 2;
        }
    }
}

/// A `Retry-After` given in seconds (the HTTP-date form is left to the backoff).
fn retry_after_secs(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What kind of transport failure, in words that reveal nothing about the request.
fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "unreadable body"
    } else {
        "request failed"
    }
}
