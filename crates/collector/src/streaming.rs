//! Answers written page by page from the store, so a long trajectory (10,000 steps of several
//! KB each) is never held in memory whole: `GET /api/trajectories/{id}/steps` and the export.

use axum::body::{Body, Bytes};
use futures::{stream, Stream, StreamExt};
use lightning_core::{Score, Step};
use lightning_store::{ExportPart, StoreError};

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("serializing a stored row cannot fail")
}

/// A failure after the 200 was sent aborts the body: the client sees a truncated answer,
/// never a clean end.
fn aborted(e: StoreError) -> std::io::Error {
    tracing::error!(error = %e, "streamed answer aborted");
    std::io::Error::other(e.to_string())
}

/// Appends `steps` to a JSON array being written; `first` says whether none was written yet.
fn push_steps(out: &mut Vec<u8>, steps: &[Step], first: &mut bool) {
    for step in steps {
        if !std::mem::take(first) {
            out.push(b',');
        }
        out.extend(to_json(step));
    }
}

/// `{"steps":[…]}` from pages of steps (the first already read, so a failing query was an
/// error answer instead of a 200).
pub fn steps_body(
    first: Vec<Step>,
    rest: impl Stream<Item = Result<Vec<Step>, StoreError>> + Send + 'static,
) -> Body {
    let mut started = true;
    let pages = stream::once(async { Ok(first) })
        .chain(rest)
        .map(move |page| {
            let page = page.map_err(aborted)?;
            let mut out = Vec::new();
            push_steps(&mut out, &page, &mut started);
            Ok::<_, std::io::Error>(Bytes::from(out))
        });
    let open = stream::once(async { Ok(Bytes::from_static(b"{\"steps\":[")) });
    let close = stream::once(async { Ok(Bytes::from_static(b"]}")) });
    Body::from_stream(open.chain(pages).chain(close))
}

/// JSONL, one `TrajectoryWithSteps` per line, written as its parts arrive: the trajectory's
/// fields, then its steps page by page, then its scores.
pub fn export_body(
    parts: impl Stream<Item = Result<ExportPart, StoreError>> + Send + 'static,
) -> Body {
    let mut scores: Vec<Score> = Vec::new();
    let mut first = true;
    let lines = parts.map(move |part| {
        let mut out = Vec::new();
        match part.map_err(aborted)? {
            ExportPart::Start {
                trajectory,
                scores: of_it,
            } => {
                // The trajectory's own object without its closing brace; the steps and
                // scores follow as its last members (as `TrajectoryWithSteps` writes them).
                out = to_json(&trajectory);
                if out.pop() != Some(b'}') {
                    return Err(std::io::Error::other("a trajectory is not a JSON object"));
                }
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend(b"\"steps\":[");
                scores = of_it;
                first = true;
            }
            ExportPart::Steps(page) => push_steps(&mut out, &page, &mut first),
            ExportPart::End => {
                out.extend(b"],\"scores\":");
                out.extend(to_json(&std::mem::take(&mut scores)));
                out.extend(b"}\n");
            }
        }
        Ok(Bytes::from(out))
    });
    Body::from_stream(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(body: Body) -> String {
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn step(n: i64) -> Step {
        Step {
            step_number: n,
            timestamp: chrono::Utc::now(),
            kind: lightning_core::StepKind::Tool,
            tool_name: "Read".into(),
            tool_input: None,
            tool_output: Some(serde_json::json!("o")),
            error: None,
            duration_ms: None,
            tool_use_id: None,
            metadata: None,
        }
    }

    #[tokio::test]
    async fn pages_make_one_json_answer() {
        let rest = stream::iter([Ok(vec![step(3)]), Ok(vec![]), Ok(vec![step(4), step(5)])]);
        let answer: serde_json::Value =
            serde_json::from_str(&text(steps_body(vec![step(1), step(2)], rest)).await).unwrap();
        let numbers: Vec<i64> = answer["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stepNumber"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5]);
        let empty = text(steps_body(vec![], stream::empty())).await;
        assert_eq!(empty, r#"{"steps":[]}"#);
    }
}
