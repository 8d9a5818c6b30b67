//! The client's address, for per-address login throttling.

use std::convert::Infallible;
use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::connections::Arrival;

/// The peer address of the connection (a proxy's, behind one: jwtd does
/// not trust `X-Forwarded-For`). `None` when the server was started
/// without connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let arrival = parts.extensions.get::<Arrival>();
        Ok(Self(arrival.map(|arrival| arrival.peer.ip())))
    }
}
