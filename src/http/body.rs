//! Request bodies as Django REST Framework reads them: JSON or form-encoded
//! fields, with DRF's messages for missing, blank and ill-typed fields.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use super::connections::Arrival;
use super::error::ApiError;

/// Largest accepted body; bigger ones get 413.
pub const MAX_BODY_BYTES: usize = 65_536;

/// The fields of a request body.
#[derive(Debug, Default)]
pub struct Fields(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let media_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let deadline = request
            .extensions()
            .get::<Arrival>()
            .map(|arrival| arrival.body_deadline);
        let read = Bytes::from_request(request, state);
        let read = match deadline {
            Some(at) => tokio::time::timeout_at(at, read)
                .await
                .map_err(|_| ApiError::RequestTimeout)?,
            None => read.await,
        };
        let body = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::UnreadableBody
            }
        })?;
        Self::parse(media_type.as_deref(), &body)
    }
}

impl Fields {
    /// Parses a body of the given `Content-Type`. As in DRF, an empty body
    /// or one without a content type has no fields.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, ApiError> {
        let Some(content_type) = content_type else {
            return Ok(Self::default());
        };
        if body.is_empty() {
            return Ok(Self::default());
        }
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media_type == "application/json" || media_type.ends_with("+json") {
            return Self::from_json(body);
        }
        if media_type == "application/x-www-form-urlencoded" {
            let fields = form_urlencoded::parse(body)
                .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
                .collect();
            return Ok(Self(fields));
        }
        Err(ApiError::UnsupportedMediaType(content_type.to_owned()))
    }

    fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|err| ApiError::JsonParse(err.to_string()))?;
        let python_type = match value {
            Value::Object(map) => return Ok(Self(map)),
            Value::Null => return Err(non_field_error("No data provided")),
            Value::Array(_) => "list",
            Value::String(_) => "str",
            Value::Bool(_) => "bool",
            Value::Number(ref n) if n.is_f64() => "float",
            Value::Number(_) => "int",
        };
        Err(non_field_error(&format!(
            "Invalid data. Expected a dictionary, but got {python_type}."
        )))
    }

    /// The named fields as strings, or every field's errors at once. With
    /// `trim`, surrounding whitespace is removed first (DRF's CharField
    /// default; passwords are never trimmed).
    pub fn strings<const N: usize>(
        &self,
        names: [(&str, Trim); N],
    ) -> Result<[String; N], ApiError> {
        let mut errors = BTreeMap::new();
        let values = names.map(|(name, trim)| match self.string(name, trim) {
            Ok(value) => value,
            Err(message) => {
                errors.insert(name.to_owned(), vec![message.to_owned()]);
                String::new()
            }
        });
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(ApiError::Fields(errors))
        }
    }

    fn string(&self, name: &str, trim: Trim) -> Result<String, &'static str> {
        let text = match self.0.get(name) {
            None => return Err("This field is required."),
            Some(Value::Null) => return Err("This field may not be null."),
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            Some(_) => return Err("Not a valid string."),
        };
        let text = match trim {
            Trim::Yes => text.trim().to_owned(),
            Trim::No => text,
        };
        if text.is_empty() {
            return Err("This field may not be blank.");
        }
        Ok(text)
    }
}

/// Whether a field's surrounding whitespace is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Remove it, as DRF's CharField does.
    Yes,
    /// Keep it (passwords).
    No,
}

fn non_field_error(message: &str) -> ApiError {
    ApiError::Fields(BTreeMap::from([(
        "non_field_errors".to_owned(),
        vec![message.to_owned()],
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Result<Fields, ApiError> {
        Fields::parse(Some("application/json"), body.as_bytes())
    }

    #[test]
    fn reports_every_missing_field() {
        let err = json("{}")
            .unwrap()
            .strings([("username", Trim::Yes), ("password", Trim::No)]);
        let Err(ApiError::Fields(errors)) = err else {
            panic!("expected field errors")
        };
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn reads_form_bodies() {
        let fields =
            Fields::parse(Some("application/x-www-form-urlencoded"), b"a=1+2&b=%C3%A9").unwrap();
        let [a, b] = fields
            .strings([("a", Trim::Yes), ("b", Trim::Yes)])
            .unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("1 2", "é"));
    }

    #[test]
    fn non_objects_are_refused_like_drf() {
        assert!(matches!(json("[]"), Err(ApiError::Fields(_))));
        assert!(matches!(json("{"), Err(ApiError::JsonParse(_))));
        assert!(matches!(
            Fields::parse(Some("text/plain"), b"x"),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
