//! Extractors whose rejections are `ApiError`s: the client always gets JSON naming the problem.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{error::ApiError, AppState};

/// A JSON body: requires `Content-Type: application/json`, honours the body limit (413), and
/// reports type errors with the path of the offending field (`steps[2].stepNumber: …`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        let limit = state.config.body_limit;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(limit)
            .min(limit);
        // The body's bytes count against the JSON memory budget while it is read; the
        // reservation then becomes one of its parse cost (see `LimitState::grow_json`).
        let reading = state.limits.reserve_json(declared).await?;
        let timeout = state.limits.limits.body_timeout;
        let bytes = tokio::time::timeout(timeout, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {}s",
                    timeout.as_secs()
                ))
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit }
                } else {
                    ApiError::BadRequest(format!("could not read the request body: {rejection}"))
                }
            })?;
        let cost = crate::limits::check_json_cost(&bytes)?;
        let _parsing = state.limits.grow_json(reading, cost).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be left out: no body at all (no `Content-Type`, no or zero
/// `Content-Length`) is `T::default()`; anything else is read as a [`JsonBody`].
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let headers = req.headers();
        let no_type = headers.get(header::CONTENT_TYPE).is_none();
        let no_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() == "0");
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        if no_type && no_length && !chunked {
            return Ok(OptionalJsonBody(T::default()));
        }
        JsonBody::from_request(req, state)
            .await
            .map(|JsonBody(v)| OptionalJsonBody(v))
    }
}

/// Parses a request body, which is always a JSON object (serde would otherwise accept an array
/// for a struct, field by position).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => {
            return Err(ApiError::BadRequest(
                "request body is empty: expected a JSON object".into(),
            ))
        }
        Some(_) if serde_json::from_slice::<serde_json::Value>(bytes).is_err() => {
            return Err(ApiError::BadRequest(
                "malformed JSON: expected a JSON object".into(),
            ))
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid body: expected a JSON object".into(),
            ))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Deeply nested input is refused by serde_json's recursion limit (128) before it can hurt.
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if is_number_out_of_range(&inner) && !(path == "." || path.is_empty()) {
            // JSON has no NaN or Infinity: a number beyond a double (`1e400`) is the only
            // non-finite value that can arrive. serde_json calls it a syntax error; it is a bad
            // value of a known field, so the field is named.
            format!("{path}: not a finite number ({inner})")
        } else if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else if path == "." || path.is_empty() {
            format!("invalid body: {inner}")
        } else {
            format!("{path}: {inner}")
        };
        ApiError::BadRequest(message)
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde_json has no public error code for it; its message is stable ("number out of range").
fn is_number_out_of_range(e: &serde_json::Error) -> bool {
    e.is_syntax() && e.to_string().starts_with("number out of range")
}

/// Query-string parameters, rejected as 400 with serde's message. Every parameter, on every
/// route and backend alike, must be valid UTF-8 without control characters (NUL included):
/// otherwise 400 naming the parameter, before anything reaches the store.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        check_query(query)?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "invalid query parameter {}: {}",
                    e.path(),
                    e.inner()
                ))
            })
    }
}

/// The input rule for query strings: each name and value, once decoded, is valid UTF-8 text
/// without control characters.
pub fn check_query(query: &str) -> Result<(), ApiError> {
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = String::from_utf8(decode_component(raw_name)).map_err(|_| {
            ApiError::BadRequest("invalid query parameter name: not valid UTF-8".into())
        })?;
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(ApiError::BadRequest(format!(
                "invalid query parameter name {:?}: contains the control character U+{:04X}",
                name.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>(),
                c as u32
            )));
        }
        let shown: String = name.chars().take(64).collect();
        let value = String::from_utf8(decode_component(raw_value)).map_err(|_| {
            ApiError::BadRequest(format!("invalid query parameter {shown}: not valid UTF-8"))
        })?;
        check_text(&shown, &value)
            .map_err(|e| ApiError::BadRequest(format!("invalid query parameter {e}")))?;
    }
    Ok(())
}

/// `field: contains the control character U+0000` when `value` holds one.
pub fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(ApiError::BadRequest(format!(
            "{field}: contains the control character U+{:04X}",
            c as u32
        ))),
        None => Ok(()),
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value, to bytes.
fn decode_component(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match bytes[i] {
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Parses a trajectory id from the path, naming the bad value when it is not a UUID.
pub fn trajectory_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| {
        let shown: String = raw.chars().take(64).collect();
        ApiError::BadRequest(format!("invalid trajectory id {shown:?}: expected a UUID"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_rule_names_the_parameter() {
        assert!(check_query("q=hello+world&agentId=a%2Fb&limit=5").is_ok());
        assert!(check_query("q=caf%C3%A9").is_ok());
        for (query, expected) in [
            (
                "q=%00zzz",
                "invalid query parameter q: contains the control character U+0000",
            ),
            (
                "agentId=a%0Ab",
                "invalid query parameter agentId: contains the control character U+000A",
            ),
            (
                "taskType=%7F",
                "invalid query parameter taskType: contains the control character U+007F",
            ),
            (
                "q=%C2%85",
                "invalid query parameter q: contains the control character U+0085",
            ),
            ("q=%FF", "invalid query parameter q: not valid UTF-8"),
            (
                "%00=1",
                "invalid query parameter name \"\": contains the control character U+0000",
            ),
        ] {
            match check_query(query) {
                Err(ApiError::BadRequest(message)) => assert_eq!(message, expected, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
