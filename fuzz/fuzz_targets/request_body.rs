//! Request bodies: an arbitrary `Content-Type` and body read as the login
//! endpoint reads them (`jwtd::testing::login_fields`): the fields by media
//! type, as every POST endpoint parses them, then `username` and `password`
//! as strings.
//!
//! Beyond "never panics": a refused body is a 4xx, never a 5xx; fields
//! that are read are non-blank, and the username has no surrounding
//! whitespace.

#![no_main]

use jwtd::testing::{MAX_BODY_BYTES, login_fields};
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
    match login_fields(content_type.as_deref(), &body) {
        Ok([username, password]) => {
            assert!(
                !username.is_empty() && !password.is_empty(),
                "a blank field read"
            );
            assert_eq!(username, username.trim(), "the username was not trimmed");
        }
        Err(status) => {
            assert!(status.is_client_error(), "{status} for {content_type:?}");
        }
    }
});
