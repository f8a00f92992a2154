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
    vamp_core::traits::StoredEvent {
        id,
        event: event.clone(),
    }
    .to_json()
}

/// An event query body (spec §1.14) as a filter, and its aggregator if any.
async fn query_body(
    state: &AppState,
    text: &str,
) -> Result<(EventFilter, Option<vamp_core::model::Aggregator>), ApiError> {
    let Artifact::EventQuery(q) = one_artifact(state, text, Kind::EventQuery).await? else {
        return Err(ApiError::bad_request("expected an event query"));
    };
    let mut filter = EventFilter::tags(q.tags);
    filter.kind = q.kind;
    let time = |field: &str,
                text: &Option<String>|
     -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        text.as_deref()
            .map(|t| {
                date_math(t, chrono::Utc::now()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "error[EventQueryTimeError]: timestamp.{field} = '{t}' is not a time: write an ISO-8601 time or now, now-1h, now-30m, now-2d"
                    ))
                })
            })
            .transpose()
    };
    use std::ops::Bound;
    let ts = &q.timestamp;
    filter.from = match (time("gte", &ts.gte)?, time("gt", &ts.gt)?) {
        (Some(t), _) => Bound::Included(t),
        (None, Some(t)) => Bound::Excluded(t),
        (None, None) => Bound::Unbounded,
    };
    filter.until = match (time("lte", &ts.lte)?, time("lt", &ts.lt)?) {
        (Some(t), _) => Bound::Included(t),
        (None, Some(t)) => Bound::Excluded(t),
        (None, None) => Bound::Unbounded,
    };
    Ok((filter, q.aggregator))
}

/// An ISO-8601 time, or Elasticsearch-style date math relative to `now`: `now`, `now-1h`,
/// `now+30m` (units s, m, h, d, w).
///
/// ```ignore
/// assert!(date_math("now-1h", now).is_some());
/// ```
pub(super) fn date_math(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let rest = text.strip_prefix("now")?;
    if rest.is_empty() {
        return Some(now);
    }
    let (sign, amount) = match rest.split_at_checked(1)? {
        ("-", a) => (-1, a),
        ("+", a) => (1, a),
        _ => return None,
    };
    let unit = amount.chars().last()?;
    let n: i64 = amount[..amount.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    now.checked_add_signed(chrono::Duration::try_seconds(
        sign * n.checked_mul(seconds)?,
    )?)
}

/// Events scanned at most for one aggregation.
const AGGREGATION_LIMIT: u64 = 100_000;

/// The aggregate of the numbers in `field` of each event's value (or the value itself).
async fn aggregate(
    state: &AppState,
    filter: &EventFilter,
    aggregator: &vamp_core::model::Aggregator,
) -> Result<Value, ApiError> {
    use vamp_core::model::AggregatorType;
    let (mut count, mut sum, mut min, mut max) = (0u64, 0f64, f64::INFINITY, f64::NEG_INFINITY);
    let mut page = 1;
    loop {
        let found = state.vamp.events(filter, Page::new(page, 1000)).await?;
        if found.items.is_empty() {
            break;
        }
        for e in &found.items {
            let value = match &aggregator.field {
                Some(f) => e.event.value.get(f),
                None => Some(&e.event.value),
            };
            if let Some(v) = value.and_then(Value::as_f64) {
                count += 1;
                sum += v;
                min = min.min(v);
                max = max.max(v);
            } else if aggregator.kind == AggregatorType::Count {
                count += 1;
            }
        }
        if page * 1000 >= found.total.min(AGGREGATION_LIMIT) {
            break;
        }
        page += 1;
    }
    let value = match aggregator.kind {
        AggregatorType::Count => json!(count),
        _ if count == 0 => Value::Null,
        AggregatorType::Sum => json!(sum),
        AggregatorType::Min => json!(min),
        AggregatorType::Max => json!(max),
        AggregatorType::Average => json!(sum / count as f64),
    };
    Ok(json!({"value": value}))
}

/// `GET /api/v1/events`: by `tag`/`type` parameters, or by an event query body (spec §1.14);
/// an aggregator in the body answers one `{"value": …}` instead of a list.
#[utoipa::path(get, path = "/events", tag = "events", params(("tag" = Option<Vec<String>>, Query, description = "events with all these tags"), ("type" = Option<String>, Query), ("page" = Option<u64>, Query), ("per_page" = Option<u64>, Query)), responses((status = 200, description = "Matching events, newest first", body = Vec<schemas::Event>)))]
pub(super) async fn events(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let filter = match optional_body(&headers, body)? {
        Some(text) => {
            let (filter, aggregator) = query_body(&state, &text).await?;
            if let Some(aggregator) = aggregator {
                let value = aggregate(&state, &filter, &aggregator).await?;
                return Ok(reply(StatusCode::OK, &headers, &value));
            }
            filter
        }
        None => event_filter(&query),
    };
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

#[utoipa::path(post, path = "/events", tag = "events", params(("validate_only" = Option<bool>, Query)), request_body(content = schemas::Event, description = "The event"), responses((status = 201, description = "Stored, with its id", body = schemas::Event), (status = 400, description = "Does not read", body = schemas::ErrorBody)))]
pub(super) async fn publish(State(state): State<AppState>, write: Write) -> ApiResult {
    let event = match one_artifact(&state, &write.text, Kind::Event).await? {
        Artifact::Event(e) => e,
        other => {
            return Err(ApiError::bad_request(format!(
                "expected an event, got a {}",
                other.kind().singular()
            )));
        }
    };
    if write.check_only {
        return Ok(reply(
            StatusCode::CREATED,
            &write.headers,
            &Artifact::Event(event).to_json(),
        ));
    }
    let stored = state.vamp.publish(&event).await?;
    Ok(reply(
        StatusCode::CREATED,
        &write.headers,
        &event_json(stored.id, &stored.event),
    ))
}

/// The SSE type of workflow output lines on the stream (not stored).
pub(super) const WORKFLOW_LOG: &str = "workflow-log";

/// Workflow runs' output lines as they are written, as SSE messages of type `workflow-log`
/// (`{workflow, execution, at, stderr, text}`, no id: they are not stored), for a stream
/// whose filter a line passes as an event tagged `workflows:<name>`, `log` of that type.
fn workflow_logs(
    vamp: &vamp_core::Vamp,
    filter: EventFilter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + use<> {
    use tokio::sync::broadcast::error::RecvError;
    let lines = futures::stream::unfold(vamp.workflow_logs(), |mut rx| async move {
        match rx.recv().await {
            Ok(line) => Some((Ok(line), rx)),
            Err(RecvError::Lagged(missed)) => Some((Err(missed), rx)),
            Err(RecvError::Closed) => None,
        }
    });
    lines.filter_map(move |item| {
        let out = match item {
            Ok(log) => {
                let probe = Event {
                    tags: vec![format!("workflows:{}", log.workflow), "log".into()],
                    value: Value::Null,
                    kind: WORKFLOW_LOG.into(),
                    timestamp: log.line.at,
                };
                filter.matches(&probe).then(|| {
                    Ok(SseEvent::default()
                        .event(WORKFLOW_LOG)
                        .data(json!(log).to_string()))
                })
            }
            Err(missed) => Some(Ok(
                SseEvent::default().comment(format!("missed {missed} workflow log lines"))
            )),
        };
        std::future::ready(out)
    })
}

/// The per-route numbers of about every second (`stats`, see `live`) for a stream whose
/// filter passes an event tagged `stats` of that type: every unfiltered stream, and
/// `?type=stats`.
fn live_stats(
    state: &AppState,
    filter: &EventFilter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + use<> {
    use tokio::sync::broadcast::error::RecvError;
    let probe = Event {
        tags: vec![live::STATS.into()],
        value: Value::Null,
        kind: live::STATS.into(),
        timestamp: chrono::Utc::now(),
    };
    let rx = filter
        .matches(&probe)
        .then(|| state.live.subscribe(&state.vamp, &state.stopping));
    futures::stream::unfold(rx, |rx| async move {
        let mut rx = rx?;
        loop {
            match rx.recv().await {
                Ok(text) => {
                    let message = SseEvent::default().event(live::STATS).data(&*text);
                    return Some((Ok(message), Some(rx)));
                }
                // Behind: the next message is the newest.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

#[utoipa::path(get, path = "/events/stream", tag = "events", params(("tag" = Option<Vec<String>>, Query), ("type" = Option<String>, Query)), responses((status = 200, description = "Server-sent events of matching events, workflow output lines (type `workflow-log`, not stored) and about once a second the per-route numbers (type `stats`, not stored)", content_type = "text/event-stream", body = String)))]
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
    let stored_filter = filter.clone();
    let stored = events.filter_map(move |item| {
        let out = match item {
            Ok(stored) if stored_filter.matches(&stored.event) => Some(Ok(SseEvent::default()
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
    let stats = live_stats(&state, &filter);
    let logs = workflow_logs(&state.vamp, filter);
    let stream =
        futures::stream::select(futures::stream::select(stored, logs), stats).take_until(stop);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
