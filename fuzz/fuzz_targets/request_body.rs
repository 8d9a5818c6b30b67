//! Request bodies: an arbitrary `Content-Type` and body into
//! `jwtd::http::Fields::parse`, as every POST endpoint reads them.
//!
//! Beyond "never panics": a refused body is a 4xx, never a 5xx.
//!
//! `Fields::strings`, which the handlers call next, takes `Trim`, which
//! `jwtd::http` does not export (the `body` module is private), so this
//! target cannot reach it; the HTTP-level random-input test covers it.

#![no_main]

use axum::response::IntoResponse;
use jwtd::http::{Fields, MAX_BODY_BYTES};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Request {
    content_type: ContentType,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    Absent,
    Json(String),
    Form(String),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Bytes(Vec<u8>),
    /// A JSON object with the login fields as arbitrary values.
    Login {
        username: Option<String>,
        password: Option<String>,
        nested: bool,
    },
    /// A form body from arbitrary pairs.
    Form(Vec<(String, String)>),
}

fuzz_target!(|request: Request| {
    let content_type = match &request.content_type {
        ContentType::Absent => None,
        // Parameters and case variations after the media type.
        ContentType::Json(rest) => Some(format!("application/JSON{rest}")),
        ContentType::Form(rest) => Some(format!("application/x-www-form-urlencoded{rest}")),
        ContentType::Other(text) => Some(text.clone()),
    };
    let body = match request.body {
        Body::Bytes(bytes) => bytes,
        Body::Login {
            username,
            password,
            nested,
        } => {
            let mut fields = serde_json::Map::new();
            if let Some(username) = username {
                fields.insert("username".into(), username.into());
            }
            if let Some(password) = password {
                fields.insert("password".into(), password.into());
            }
            let object = serde_json::Value::Object(fields);
            let value = if nested {
                serde_json::json!({ "data": object })
            } else {
                object
            };
            value.to_string().into_bytes()
        }
        Body::Form(pairs) => {
            let mut form = String::new();
            for (name, value) in pairs {
                form.push_str(&name);
                form.push('=');
                form.push_str(&value);
                form.push('&');
            }
            form.into_bytes()
        }
    };
    if body.len() > MAX_BODY_BYTES {
        return;
    }
    if let Err(error) = Fields::parse(content_type.as_deref(), &body) {
        let status = error.into_response().status();
        assert!(status.is_client_error(), "{status} for {content_type:?}");
    }
});
