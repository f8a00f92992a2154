//! Events: `vamp emit`, `vamp events`, and the event stream (server-sent events) other commands
//! follow.

use eventsource_stream::Eventsource as _;
use futures::{Stream, StreamExt as _};

use super::*;

/// `vamp emit <value> --tags a,b`.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn emit(
    client: &Client,
    value: &str,
    tags: &[String],
    kind: Option<&str>,
) -> Result<String, Failure> {
    let value: Value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
    let mut event = json!({"tags": tags, "value": value});
    if let Some(kind) = kind {
        event["type"] = json!(kind);
    }
    let stored = client
        .with_body(reqwest::Method::POST, "/events", &event.to_string())
        .await?;
    Ok(format!("event {}\n", stored["id"].as_str().unwrap_or("?")))
}

/// The server's event stream (`GET /api/v1/events/stream`, server-sent events), read one
/// `data:` payload at a time. Parsing is `eventsource-stream`'s: messages and UTF-8 characters
/// split across chunks read whole, every line ending the standard allows.
pub struct EventStream {
    events: std::pin::Pin<Box<dyn Stream<Item = Result<String, String>> + Send>>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// Subscribes to the events with all of `tags` (and of `kind`, when given).
    ///
    /// # Errors
    /// The server's refusal, or that it cannot be reached.
    pub async fn open(
        client: &Client,
        tags: &[String],
        kind: Option<&str>,
    ) -> Result<Self, Failure> {
        let mut query: Vec<(&str, &str)> = tags.iter().map(|t| ("tag", t.as_str())).collect();
        if let Some(kind) = kind {
            query.push(("type", kind));
        }
        let response = client
            .request(reqwest::Method::GET, "/events/stream")
            .query(&query)
            .send()
            .await
            .map_err(|e| {
                fail(
                    UNREACHABLE,
                    format!("cannot reach vamp-server at {}: {e}", client.base),
                )
            })?;
        if !response.status().is_success() {
            return Err(fail(
                REFUSED,
                format!("the event stream was refused: {}", response.status()),
            ));
        }
        Ok(Self::of(response.bytes_stream()))
    }

    /// The events of a stream of body chunks.
    fn of<S, B, E>(chunks: S) -> Self
    where
        S: Stream<Item = Result<B, E>> + Send + 'static,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let events = chunks
            .eventsource()
            .map(|event| event.map(|e| e.data).map_err(|e| e.to_string()))
            // Messages without data (keep-alive comments are dropped already) carry nothing.
            .filter(|data| {
                std::future::ready(data.as_ref().is_ok_and(|d| !d.is_empty()) || data.is_err())
            });
        EventStream {
            events: Box::pin(events),
        }
    }

    /// The next event's JSON text; `None` when the server ends the stream.
    ///
    /// # Errors
    /// The stream broke.
    pub async fn next(&mut self) -> Result<Option<String>, Failure> {
        match self.events.next().await {
            None => Ok(None),
            Some(Ok(data)) => Ok(Some(data)),
            Some(Err(e)) => Err(fail(UNREACHABLE, format!("the event stream broke: {e}"))),
        }
    }
}

/// `vamp events --tag … [--count n]`: prints each matching event as one JSON line as it
/// arrives (SSE), until `count` events or the stream ends.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn events(
    client: &Client,
    tags: &[String],
    kind: Option<&str>,
    count: Option<usize>,
    out: &mut dyn std::io::Write,
) -> Result<(), Failure> {
    let mut stream = EventStream::open(client, tags, kind).await?;
    let mut seen = 0;
    while let Some(data) = stream.next().await? {
        let _ = writeln!(out, "{data}");
        let _ = out.flush();
        seen += 1;
        if count.is_some_and(|c| seen >= c) {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod sse_tests {
    use super::EventStream;

    /// Issue 20: a message and a UTF-8 character split across chunks read whole; `\r\n`
    /// endings; several `data:` lines join with `\n`; comments are not events.
    #[tokio::test]
    async fn messages_split_across_chunks_and_characters_read_whole() {
        let message =
            "data: {\"text\":\"rollout r: déjà vu\"}\r\n\r\ndata: a\ndata: b\n\n: comment\n\n";
        let bytes = message.as_bytes();
        // Cut inside the two-byte 'é', and again inside the second message.
        let cut = message.find('é').unwrap() + 1;
        let second = message.find("data: b").unwrap() + 3;
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
            Ok(bytes[..cut].to_vec()),
            Ok(bytes[cut..second].to_vec()),
            Ok(bytes[second..].to_vec()),
        ];
        let mut stream = EventStream::of(futures::stream::iter(chunks));
        let mut got = Vec::new();
        while let Some(data) = stream.next().await.unwrap() {
            got.push(data);
        }
        assert_eq!(got, ["{\"text\":\"rollout r: déjà vu\"}", "a\nb"]);
    }
}
