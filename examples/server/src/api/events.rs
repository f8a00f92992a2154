//! Events (spec §2.7): publish, query by tags, and the SSE stream.

use super::*;

/// `tag` (repeated) and `type`.
pub(super) fn event_filter(query: &[(String, String)]) -> EventFilter {
    let mut filter = EventFilter::tags(
        query
            .iter()
            .filter(|(k, _)| k == "tag")
            .map(|(_, v)| v.clone()),
    );
    filter.kind = query
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.clone());
    filter
}

pub(super) fn event_json(id: u64, event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), json!(id.to_string()));
    }
    value
}

pub(super) async fn events(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let filter = event_filter(&query);
    let page = paging_of(&query).page();
    let found = state.vamp.events(&filter, page).await?;
    let items: Vec<Value> = found
        .items
        .iter()
        .map(|e| event_json(e.id, &e.event))
        .collect();
    let response = reply(StatusCode::OK, &headers, &Value::Array(items));
    Ok(paged(response, "/api/v1/events", page, found.total))
}

pub(super) async fn publish(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let check_only = validate_only(&query)?;
    let text = body_text(&headers, body)?;
    let event = match one_artifact(&text, Kind::Event)? {
        Artifact::Event(e) => e,
        other => {
            return Err(ApiError::bad_request(format!(
                "expected an event, got a {}",
                other.kind().singular()
            )));
        }
    };
    if check_only {
        return Ok(reply(
            StatusCode::CREATED,
            &headers,
            &Artifact::Event(event).to_json(),
        ));
    }
    let stored = state.vamp.publish(&event).await?;
    Ok(reply(
        StatusCode::CREATED,
        &headers,
        &event_json(stored.id, &stored.event),
    ))
}

pub(super) async fn stream(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let filter = event_filter(&query);
    let events = state.vamp.subscribe().await?;
    // A stream never ends by itself: it ends when the server shuts down, so a graceful
    // shutdown does not wait for its clients.
    let mut stopping = state.stopping.clone();
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let stream = events.take_until(stop).filter_map(move |item| {
        let out = match item {
            Ok(stored) if filter.matches(&stored.event) => Some(Ok(SseEvent::default()
                .event(stored.event.kind.clone())
                .id(stored.id.to_string())
                .data(event_json(stored.id, &stored.event).to_string()))),
            Ok(_) => None,
            // A subscriber that fell behind is told so and goes on with newer events.
            Err(e) => Some(Ok(
                SseEvent::default().comment(format!("missed events: {e}"))
            )),
        };
        std::future::ready(out)
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
