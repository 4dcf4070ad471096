//! Who is calling: OAuth 2.0 bearer JWTs (OIDC). [`Verifier`] checks a
//! token's signature (RS256 or ES256) against the issuer's JWKS (fetched,
//! cached, fetched again when a token names a key it has not seen), and its
//! issuer, audience, expiry and not-before, and tells who the caller is: a
//! [`Principal`], a customer or an operator. [`Issuer`] is a local issuer
//! for the dev stack and the tests: a key pair made at start, its JWKS, and
//! tokens minted on request. Cryptography is jsonwebtoken's and OpenSSL's.

mod gate;
mod issuer;
mod principal;
mod verified;
mod verifier;

pub use gate::{authenticate, require_operator, require_own, Bearer, Gate};
pub use issuer::{Issuer, TokenRequest, TokenResponse};
pub use principal::{Principal, Role};
pub use verifier::{AuthConfig, AuthError, Verifier};

/// The audience orderflow's tokens are for, unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "orderflow";
/// The role (or scope) that makes a caller an operator, unless configured otherwise.
pub const DEFAULT_OPERATOR_ROLE: &str = "orderflow:operator";
