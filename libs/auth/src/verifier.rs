//! Validating bearer tokens against the issuer's JWKS.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};

use crate::principal::{Claims, Principal, Role};
use crate::verified::Verified;

/// Where tokens come from and what they must say: the `ORDERFLOW_AUTH_*`
/// settings, flattened into the gateway's and every service's configuration.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// The issuer's JWKS (OIDC `jwks_uri`, `https://idp/.well-known/jwks.json`
    /// say): required.
    #[serde(rename = "auth_jwks_url")]
    pub jwks_url: String,
    /// The `iss` every token must carry: required.
    #[serde(rename = "auth_issuer")]
    pub issuer: String,
    /// The `aud` every token must include.
    #[serde(rename = "auth_audience")]
    pub audience: String,
    /// The role or scope (in `scope`, `scp`, `roles` or Keycloak's
    /// `realm_access.roles`) that makes a caller an operator.
    #[serde(rename = "auth_operator_role")]
    pub operator_role: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: String::new(),
            issuer: String::new(),
            audience: crate::DEFAULT_AUDIENCE.into(),
            operator_role: crate::DEFAULT_OPERATOR_ROLE.into(),
        }
    }
}

impl AuthConfig {
    /// What cannot work, naming the variable that fixes it: an API with no
    /// way to check tokens serves no one.
    pub fn validate(&self) -> Result<(), String> {
        let jwks =
            reqwest::Url::parse(&self.jwks_url).is_ok_and(|u| u.scheme().starts_with("http"));
        if !jwks {
            return Err(format!(
                "auth_jwks_url `{}` is not an http(s) URL: set ORDERFLOW_AUTH_JWKS_URL to the token issuer's JWKS, e.g. https://idp.example.com/.well-known/jwks.json (the API serves no one without it)",
                self.jwks_url
            ));
        }
        for (name, value, what) in [
            (
                "auth_issuer",
                &self.issuer,
                "to the `iss` of the tokens to accept",
            ),
            (
                "auth_audience",
                &self.audience,
                "to the `aud` tokens are for",
            ),
            (
                "auth_operator_role",
                &self.operator_role,
                "to the role or scope of operators",
            ),
        ] {
            if value.trim().is_empty() {
                return Err(format!(
                    "{name} is empty: set ORDERFLOW_{} {what}",
                    name.to_uppercase()
                ));
            }
        }
        Ok(())
    }
}

/// Why a request's token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required (Authorization: Bearer <token>)")]
    Missing,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    /// The issuer's keys could not be fetched: not the caller's fault.
    #[error("the token issuer's keys cannot be fetched just now")]
    KeysUnavailable(String),
}

impl AuthError {
    /// The `WWW-Authenticate` challenge (RFC 6750 §3): no error code when no
    /// token was sent, `invalid_token` when one was and it did not do.
    pub fn challenge(&self) -> String {
        match self {
            AuthError::Missing => r#"Bearer realm="orderflow""#.to_string(),
            other => format!(
                r#"Bearer realm="orderflow", error="invalid_token", error_description="{}""#,
                other.to_string().replace('"', "'")
            ),
        }
    }
}

/// The longest token accepted: real ones are a few hundred bytes to a few KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// An unknown `kid` fetches the JWKS again, but not more often than this
/// (random kids must not make us hammer the issuer).
const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Keys are fetched again this often anyway (the issuer rotates them).
const MAX_AGE: Duration = Duration::from_secs(600);
/// Leeway for clocks a little apart.
const LEEWAY_S: u64 = 30;

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Option<Instant>,
}

pub struct Verifier {
    config: AuthConfig,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time.
    fetching: Mutex<()>,
    verified: Verified,
}

impl Verifier {
    pub fn new(config: AuthConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client builds");
        Self {
            config,
            http,
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
            }),
            fetching: Mutex::new(()),
            verified: Verified::default(),
        }
    }

    /// The caller a token names, if it is valid: from the tokens verified
    /// before (`verified.rs`), or checked now.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let key = Verified::key(token);
        if let Some(principal) = self.verified.get(&key) {
            return Ok(principal);
        }
        let (principal, exp) = self.check(token).await?;
        // Taken as long as the check would still pass it: until exp and
        // the leeway (an exp no time can hold: not kept at all).
        let exp = Duration::try_from_secs_f64(exp).unwrap_or_default();
        let left = UNIX_EPOCH
            .checked_add(exp.saturating_add(Duration::from_secs(LEEWAY_S)))
            .and_then(|until| until.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        self.verified.put(key, principal.clone(), left);
        Ok(principal)
    }

    /// Checks a token's signature and claims: its caller and its `exp`.
    async fn check(&self, token: &str) -> Result<(Principal, f64), AuthError> {
        // A header naming "none" (or any algorithm jsonwebtoken does not
        // know) does not parse: such a token never gets further.
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
        let (key, alg) = self.key(&kid).await?;
        if header.alg != alg {
            return Err(AuthError::Invalid(format!(
                "key {kid} signs with {alg:?}, the token says {:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_S;
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind::*;
            match e.kind() {
                ExpiredSignature => AuthError::Expired,
                InvalidSignature => AuthError::Invalid("bad signature".into()),
                InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
                InvalidAudience => AuthError::Invalid("wrong audience".into()),
                ImmatureSignature => AuthError::Invalid("not valid yet (nbf)".into()),
                MissingRequiredClaim(c) => AuthError::Invalid(format!("no {c} claim")),
                _ => AuthError::Invalid(e.to_string()),
            }
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > 64 {
            return Err(AuthError::Invalid(
                "the subject must be 1 to 64 characters".into(),
            ));
        }
        let role = if claims.grants(&self.config.operator_role) {
            Role::Operator
        } else {
            Role::Customer
        };
        let principal = Principal {
            subject: claims.sub,
            role,
            email: claims.email,
        };
        Ok((principal, claims.exp))
    }

    /// The key a token names: from the cache, or from the issuer fetched
    /// again (when the key is unknown, or the cache is old).
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        {
            let keys = self.keys.read().await;
            let fresh = keys.fetched.is_some_and(|t| t.elapsed() < MAX_AGE);
            if let (true, Some(found)) = (fresh, keys.by_kid.get(kid)) {
                return Ok(found.clone());
            }
        }
        let _one_at_a_time = self.fetching.lock().await;
        {
            let keys = self.keys.read().await;
            let recently = keys.fetched.is_some_and(|t| t.elapsed() < MIN_REFETCH);
            match keys.by_kid.get(kid) {
                Some(found) if keys.fetched.is_some_and(|t| t.elapsed() < MAX_AGE) => {
                    return Ok(found.clone())
                }
                None if recently => {
                    return Err(AuthError::Invalid(format!("unknown key {kid}")));
                }
                _ => {}
            }
        }
        match self.fetch().await {
            Ok(by_kid) => {
                let mut keys = self.keys.write().await;
                keys.by_kid = by_kid;
                keys.fetched = Some(Instant::now());
                keys.by_kid
                    .get(kid)
                    .cloned()
                    .ok_or_else(|| AuthError::Invalid(format!("unknown key {kid}")))
            }
            Err(e) => {
                // Keep serving with the keys we have while the issuer is away.
                let keys = self.keys.read().await;
                match keys.by_kid.get(kid) {
                    Some(found) => Ok(found.clone()),
                    None => Err(e),
                }
            }
        }
    }

    /// The issuer's signing keys: RSA (RS256) and P-256 (ES256) keys only;
    /// encryption keys and symmetric keys are ignored.
    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, AuthError> {
        let unavailable = |e: String| {
            tracing::warn!(jwks_url = %self.config.jwks_url, error = %e, "could not fetch the token issuer's keys");
            AuthError::KeysUnavailable(e)
        };
        let set: JwkSet = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| unavailable(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| unavailable(format!("not a JWKS: {}", e.without_url())))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), signing_algorithm(jwk)) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, alg));
            }
        }
        Ok(keys)
    }
}

/// RS256 for RSA keys, ES256 for P-256 keys; nothing else is accepted.
fn signing_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Issuer;

    /// An issuer serving its JWKS on loopback, and a verifier trusting it.
    async fn issuer() -> (Arc<Issuer>, Verifier, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Arc::new(Issuer::new(&url, crate::DEFAULT_AUDIENCE).unwrap());
        let app = issuer.clone().router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let verifier = Verifier::new(issuer.auth_config());
        (issuer, verifier, server)
    }

    /// A token verified once is taken again without a check: with the
    /// issuer gone and its keys forgotten, it still passes, and a token
    /// not seen before cannot.
    #[tokio::test]
    async fn a_verified_token_is_taken_again_without_a_second_check() {
        let (issuer, verifier, server) = issuer().await;
        let token = issuer.customer("c-1");
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "c-1");
        server.abort();
        let _ = server.await;
        *verifier.keys.write().await = Keys {
            by_kid: HashMap::new(),
            fetched: None,
        };
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "c-1");
        let other = issuer.customer("c-2");
        assert!(matches!(
            verifier.verify(&other).await,
            Err(AuthError::KeysUnavailable(_))
        ));
        // Refusals are not kept: a token changed by a byte is checked.
        let forged = format!("{token}x");
        assert!(verifier.verify(&forged).await.is_err());
    }

    /// Never taken past the moment the check would refuse it.
    #[tokio::test]
    async fn a_verified_token_is_not_taken_past_its_expiry() {
        let (issuer, verifier, _server) = issuer().await;
        let mut claims = issuer.claims("c-1", false, Duration::from_secs(60));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Expired 29 s ago: the leeway takes it for one second more.
        claims["exp"] = serde_json::json!(now - (LEEWAY_S - 1));
        let token = issuer.sign(&claims, jsonwebtoken::Algorithm::ES256);
        assert!(verifier.verify(&token).await.is_ok());
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        assert_eq!(verifier.verify(&token).await, Err(AuthError::Expired));
    }

    /// An `exp` no time can hold, or with a fraction, is judged and never
    /// panics (a token is checked before it is kept).
    #[tokio::test]
    async fn any_expiry_a_token_names_is_judged_without_panic() {
        let (issuer, verifier, _server) = issuer().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for exp in [
            serde_json::json!(now + 0.5),
            serde_json::json!(1e30),
            serde_json::json!(u64::MAX),
            serde_json::json!(-1),
        ] {
            let mut claims = issuer.claims("c-1", false, Duration::from_secs(60));
            claims["exp"] = exp.clone();
            let token = issuer.sign(&claims, jsonwebtoken::Algorithm::ES256);
            let first = verifier.verify(&token).await;
            assert_eq!(verifier.verify(&token).await, first, "{exp}");
        }
    }

    /// The README states the leeway the verifier gives (it once said 60 s
    /// while the code gave 30).
    #[test]
    fn the_readme_states_the_leeway_the_verifier_gives() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&format!("({} s of leeway)", super::LEEWAY_S)),
            "README.md's Security section must say ({} s of leeway)",
            super::LEEWAY_S
        );
    }
}
