//! Login sessions: access JWTs (issue, validate) and the session flow after login (refresh with
//! rotation and reuse detection, logout, resolving a presented credential into a principal).

mod flow;
mod jwt;

pub use flow::{AccessContext, SessionTokens};
pub use jwt::{AccessClaims, AccessToken, JwtCodec, JwtKeys};
