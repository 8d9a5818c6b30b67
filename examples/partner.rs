//! A partner service that trusts jwtd's tokens through its JWKS.
//!
//! ```sh
//! cargo run --example partner -- --jwks-url http://127.0.0.1:8000/.well-known/jwks.json --bind 127.0.0.1:9000
//! curl -s http://127.0.0.1:9000/hello -H "Authorization: Bearer $ACCESS"
//! # {"user_id":"1"}
//! ```
//!
//! It needs only `jwtd = { default-features = false, features = ["verifier"] }`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use jwtd::verifier::{Authenticated, RemoteOptions, Verifier, VerifyOptions};
use serde::Deserialize;
use serde_json::{Value, json};

/// The partner's state: it only needs the verifier.
#[derive(Clone)]
struct AppState {
    verifier: Arc<Verifier>,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.verifier)
    }
}

/// The claims this service reads.
#[derive(Deserialize)]
struct Claims {
    user_id: String,
}

/// `GET /hello`: who is calling, for a valid access token.
async fn hello(Authenticated(claims): Authenticated<Claims>) -> Json<Value> {
    Json(json!({"user_id": claims.user_id}))
}

/// `--jwks-url URL` and `--bind ADDR` from the command line.
fn arguments() -> Result<(String, SocketAddr), String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut bind) = (None, "127.0.0.1:9000".to_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jwks-url" => url = args.next(),
            "--bind" => bind = args.next().ok_or("--bind needs an address")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--jwks-url URL is required")?;
    let bind = bind
        .parse()
        .map_err(|_| format!("`{bind}` is not an address"))?;
    Ok((url, bind))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("partner: error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let (url, bind) = arguments()?;
    let verifier =
        Verifier::from_jwks_url(&url, VerifyOptions::default(), RemoteOptions::default())
            .await
            .map_err(|err| err.to_string())?;
    let app = Router::new()
        .route("/hello", get(hello))
        .with_state(AppState {
            verifier: Arc::new(verifier),
        });
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|err| format!("cannot listen on {bind}: {err}"))?;
    println!(
        "partner listening on {}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    axum::serve(listener, app)
        .await
        .map_err(|err| err.to_string())
}
