//! `orderflow token`: a bearer token from the dev stack's issuer, for curl
//! and for the tools (a customer's, or an operator's). Only the dev issuer
//! mints on request; in a cluster, tokens come from your OIDC provider.

use anyhow::{bail, Context, Result};
use orderflow_auth::{TokenRequest, TokenResponse};

use crate::connect::DevConnect;

#[derive(clap::Args)]
pub struct Args {
    /// A customer's token: the customer id is its subject.
    #[arg(
        long,
        conflicts_with = "operator",
        required_unless_present = "operator"
    )]
    customer: Option<String>,
    /// An operator's token.
    #[arg(long)]
    operator: bool,
    /// The `email` claim (where the customer's notifications go by email).
    #[arg(long)]
    email: Option<String>,
    /// Seconds it lives (an hour by default, a day at most).
    #[arg(long)]
    ttl_s: Option<u64>,
    #[command(flatten)]
    issuer: IssuerArg,
}

#[derive(clap::Args, Clone, Debug)]
pub struct IssuerArg {
    /// The dev issuer (default: the running dev stack's, from .data/dev/connect.json).
    #[arg(long = "issuer", env = "ORDERFLOW_DEV_ISSUER")]
    url: Option<String>,
}

impl IssuerArg {
    pub fn url(&self) -> Result<String> {
        self.url
            .clone()
            .or_else(|| DevConnect::read().map(|d| d.issuer_url))
            .ok_or_else(|| {
                crate::UsageError(format!(
                    "no token issuer: start the dev stack (make dev) or pass --issuer (no {} found)",
                    crate::connect::DEV_CONNECT_FILE
                ))
                .into()
            })
    }
}

/// Asks the issuer at `issuer` for a token.
pub async fn fetch(issuer: &str, request: &TokenRequest) -> Result<String> {
    let response = reqwest::Client::new()
        .post(format!("{}/token", issuer.trim_end_matches('/')))
        .json(request)
        .send()
        .await
        .with_context(|| format!("asking the token issuer at {issuer}"))?;
    if !response.status().is_success() {
        bail!(
            "the token issuer answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(response.json::<TokenResponse>().await?.access_token)
}

pub async fn run(args: Args) -> Result<()> {
    let request = TokenRequest {
        customer: args.customer,
        operator: args.operator,
        email: args.email,
        ttl_s: args.ttl_s,
    };
    outln!("{}", fetch(&args.issuer.url()?, &request).await?);
    Ok(())
}
