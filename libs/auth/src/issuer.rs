//! A local token issuer, for the dev stack and the tests: an ES256 and an
//! RS256 key pair made at start (OpenSSL), its JWKS and OIDC discovery
//! document, and a token endpoint that mints customer and operator tokens.
//! It signs anything it is asked to: it is for one machine, never a cluster
//! (point the chart at a real OIDC provider).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::DEFAULT_OPERATOR_ROLE;

struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
}

pub struct Issuer {
    /// The `iss` of its tokens: the URL it is served at.
    pub url: String,
    pub audience: String,
    keys: Vec<SigningKey>,
}

/// What the token endpoint is asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A customer token for this customer id.
    #[serde(default)]
    pub customer: Option<String>,
    /// An operator token.
    #[serde(default)]
    pub operator: bool,
    /// The customer's email address (the `email` claim).
    #[serde(default)]
    pub email: Option<String>,
    /// Seconds the token lives (an hour by default).
    #[serde(default)]
    pub ttl_s: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Issuer {
    /// A new issuer served at `url`, for tokens with audience `audience`.
    pub fn new(url: &str, audience: &str) -> Result<Self, openssl::error::ErrorStack> {
        let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let ec = EcKey::generate(&group)?;
        let ec_der = PKey::from_ec_key(ec)?.private_key_to_pkcs8()?;
        let rsa_der = Rsa::generate(2048)?.private_key_to_der()?;
        let keys = [
            (
                format!("dev-es256-{run}"),
                Algorithm::ES256,
                EncodingKey::from_ec_der(&ec_der),
            ),
            (
                format!("dev-rs256-{run}"),
                Algorithm::RS256,
                EncodingKey::from_rsa_der(&rsa_der),
            ),
        ]
        .into_iter()
        .map(|(kid, alg, key)| {
            let mut jwk =
                Jwk::from_encoding_key(&key, alg).expect("a public key from a private one");
            jwk.common.key_id = Some(kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            SigningKey { kid, alg, key, jwk }
        })
        .collect();
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            audience: audience.to_string(),
            keys,
        })
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// Where its JWKS is served, relative to its URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.url)
    }

    /// The settings of a verifier that trusts this issuer.
    pub fn auth_config(&self) -> crate::AuthConfig {
        crate::AuthConfig {
            jwks_url: self.jwks_url(),
            issuer: self.url.clone(),
            ..Default::default()
        }
    }

    /// Standard claims for `subject`, valid from now for `ttl`.
    pub fn claims(&self, subject: &str, operator: bool, ttl: Duration) -> Value {
        let now = now_s();
        let mut claims = json!({
            "iss": self.url,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
        });
        if operator {
            claims["roles"] = json!([DEFAULT_OPERATOR_ROLE]);
        }
        claims
    }

    /// A token for a customer (`operator` false) or an operator, ES256.
    pub fn mint(&self, subject: &str, operator: bool, ttl: Duration) -> String {
        self.sign(&self.claims(subject, operator, ttl), Algorithm::ES256)
    }

    /// A customer's token that carries their `email` claim, ES256.
    pub fn mint_with_email(&self, customer_id: &str, email: &str, ttl: Duration) -> String {
        let mut claims = self.claims(customer_id, false, ttl);
        claims["email"] = json!(email);
        self.sign(&claims, Algorithm::ES256)
    }

    /// A customer token for `customer_id`, valid an hour.
    pub fn customer(&self, customer_id: &str) -> String {
        self.mint(customer_id, false, Duration::from_secs(3_600))
    }

    /// An operator token, valid an hour.
    pub fn operator(&self) -> String {
        self.mint("operator", true, Duration::from_secs(3_600))
    }

    /// Signs any claims with its key for `alg` (ES256 or RS256): tests make
    /// expired, premature or foreign tokens with it.
    pub fn sign(&self, claims: &Value, alg: Algorithm) -> String {
        let key = self
            .keys
            .iter()
            .find(|k| k.alg == alg)
            .expect("the issuer has ES256 and RS256 keys");
        let mut header = Header::new(alg);
        header.kid = Some(key.kid.clone());
        encode(&header, claims, &key.key).expect("claims sign")
    }

    fn answer(&self, request: &TokenRequest) -> Result<TokenResponse, String> {
        let ttl = Duration::from_secs(request.ttl_s.unwrap_or(3_600).min(86_400));
        let mut claims =
            match (&request.customer, request.operator) {
                (Some(customer), false) if !customer.is_empty() && customer.len() <= 64 => {
                    self.claims(customer, false, ttl)
                }
                (None, true) => self.claims("operator", true, ttl),
                _ => return Err(
                    "ask for {\"customer\": \"<id, 1 to 64 characters>\"} or {\"operator\": true}"
                        .into(),
                ),
            };
        if let Some(email) = &request.email {
            claims["email"] = json!(email);
        }
        Ok(TokenResponse {
            access_token: self.sign(&claims, Algorithm::ES256),
            token_type: "Bearer".into(),
            expires_in: ttl.as_secs(),
        })
    }

    /// `GET /.well-known/openid-configuration`, `GET /jwks.json` and
    /// `POST /token` (`{"customer": "c-42"}` or `{"operator": true}`).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(issuer): State<Arc<Issuer>>| async move {
                    Json(json!({
                        "issuer": issuer.url,
                        "jwks_uri": issuer.jwks_url(),
                        "token_endpoint": format!("{}/token", issuer.url),
                        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
                    }))
                }),
            )
            .route(
                "/jwks.json",
                get(|State(issuer): State<Arc<Issuer>>| async move { Json(issuer.jwks()) }),
            )
            .route(
                "/token",
                post(
                    |State(issuer): State<Arc<Issuer>>,
                     orderflow_http::StrictJson(request): orderflow_http::StrictJson<
                        TokenRequest,
                    >| async move {
                        issuer
                            .answer(&request)
                            .map(Json)
                            .map_err(orderflow_http::Problem::validation)
                    },
                ),
            )
            .with_state(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthConfig, AuthError, Role, Verifier};

    async fn serve(issuer: Arc<Issuer>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = issuer.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// An issuer served on loopback, and a verifier that trusts it.
    async fn pair() -> (Arc<Issuer>, Verifier) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Arc::new(Issuer::new(&url, "orderflow").unwrap());
        let app = issuer.clone().router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let verifier = Verifier::new(AuthConfig {
            jwks_url: issuer.jwks_url(),
            issuer: url,
            audience: "orderflow".into(),
            operator_role: crate::DEFAULT_OPERATOR_ROLE.into(),
        });
        (issuer, verifier)
    }

    #[tokio::test]
    async fn tokens_of_both_algorithms_name_their_caller() {
        let (issuer, verifier) = pair().await;
        let p = verifier.verify(&issuer.customer("c-42")).await.unwrap();
        assert_eq!((p.subject.as_str(), p.role), ("c-42", Role::Customer));
        let p = verifier.verify(&issuer.operator()).await.unwrap();
        assert_eq!(p.role, Role::Operator);
        let rs = issuer.sign(
            &issuer.claims("c-7", false, Duration::from_secs(60)),
            Algorithm::RS256,
        );
        assert_eq!(verifier.verify(&rs).await.unwrap().subject, "c-7");
    }

    #[tokio::test]
    async fn every_kind_of_bad_token_is_refused() {
        let (issuer, verifier) = pair().await;
        let claims = |f: &dyn Fn(&mut Value)| {
            let mut c = issuer.claims("c-1", false, Duration::from_secs(60));
            f(&mut c);
            c
        };
        let expired = issuer.sign(
            &claims(&|c| c["exp"] = json!(now_s() - 120)),
            Algorithm::ES256,
        );
        assert_eq!(verifier.verify(&expired).await, Err(AuthError::Expired));
        let premature = issuer.sign(
            &claims(&|c| c["nbf"] = json!(now_s() + 600)),
            Algorithm::ES256,
        );
        assert!(
            matches!(verifier.verify(&premature).await, Err(AuthError::Invalid(r)) if r.contains("nbf"))
        );
        let foreign = issuer.sign(
            &claims(&|c| c["iss"] = json!("https://elsewhere")),
            Algorithm::ES256,
        );
        assert!(
            matches!(verifier.verify(&foreign).await, Err(AuthError::Invalid(r)) if r.contains("issuer"))
        );
        let other_aud = issuer.sign(&claims(&|c| c["aud"] = json!("billing")), Algorithm::ES256);
        assert!(
            matches!(verifier.verify(&other_aud).await, Err(AuthError::Invalid(r)) if r.contains("audience"))
        );
        let no_exp = issuer.sign(
            &claims(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Algorithm::ES256,
        );
        assert!(verifier.verify(&no_exp).await.is_err());
        // Another issuer's key, under this issuer's name.
        let impostor = Issuer::new(&issuer.url, "orderflow").unwrap();
        assert!(matches!(
            verifier.verify(&impostor.customer("c-1")).await,
            Err(AuthError::Invalid(r)) if r.contains("unknown key")
        ));
        // A signature that does not match.
        let good = issuer.customer("c-1");
        let (rest, sig) = good.rsplit_once('.').unwrap();
        // Flip a character in the middle: the last one carries padding bits
        // that may decode to the same bytes.
        let mut sig = sig.as_bytes().to_vec();
        let middle = sig.len() / 2;
        sig[middle] = if sig[middle] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{rest}.{}", String::from_utf8(sig).unwrap());
        assert!(verifier.verify(&tampered).await.is_err());
        // alg: none, unsigned.
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&claims(&|_| {}).to_string())
        );
        assert!(matches!(
            verifier.verify(&none).await,
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            verifier.verify("not.a.jwt").await,
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            verifier.verify(&"x".repeat(9_000)).await,
            Err(AuthError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_not_the_callers_fault() {
        let issuer = Issuer::new("http://127.0.0.1:1", "orderflow").unwrap();
        let verifier = Verifier::new(AuthConfig {
            jwks_url: issuer.jwks_url(),
            issuer: issuer.url.clone(),
            audience: "orderflow".into(),
            operator_role: crate::DEFAULT_OPERATOR_ROLE.into(),
        });
        assert!(matches!(
            verifier.verify(&issuer.customer("c-1")).await,
            Err(AuthError::KeysUnavailable(_))
        ));
    }

    #[tokio::test]
    async fn the_token_endpoint_mints_what_it_is_asked_for() {
        let url = serve(Arc::new(Issuer::new("http://issuer", "orderflow").unwrap())).await;
        let http = reqwest::Client::new();
        let token: TokenResponse = http
            .post(format!("{url}/token"))
            .json(&json!({"customer": "c-42", "email": "ada@example.com"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (token.token_type.as_str(), token.expires_in),
            ("Bearer", 3_600)
        );
        let refused = http
            .post(format!("{url}/token"))
            .json(&json!({"customer": "c-42", "operator": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 422);
    }

    fn b64(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }
}
