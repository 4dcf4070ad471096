//! The email channel: one message per notification over SMTP (lettre), with
//! STARTTLS, implicit TLS or neither, optional login, and the notification id
//! in the `Message-ID`, so a resend after a crash is recognisably the same
//! email to every mail system that deduplicates.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::channel::{Channel, ChannelError};
use crate::domain::Notification;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No TLS at all: a relay on the same host or a development mail catcher.
    None,
}

impl SmtpTls {
    pub fn parse(mode: &str) -> Result<Self, String> {
        match mode {
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Implicit),
            "none" => Ok(Self::None),
            other => Err(format!(
                "smtp_tls `{other}` is unknown: set ORDERFLOW_SMTP_TLS to starttls, tls or none"
            )),
        }
    }
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The login, if the server wants one.
    pub credentials: Option<(String, String)>,
    /// The sender, e.g. `orderflow <orders@example.com>`.
    pub from: String,
    /// A PEM certificate to trust besides the system's (a private CA's).
    pub ca_file: Option<String>,
    pub timeout: Duration,
}

pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of every `Message-ID`: the sender's domain.
    id_domain: String,
}

/// The sender and the TLS parameters `s` asks for, or what is wrong with
/// them; no I/O but reading the CA file, no runtime needed.
fn checked(s: &SmtpSettings) -> Result<(Mailbox, Option<TlsParameters>), String> {
    let from: Mailbox = s.from.parse().map_err(|e| {
        format!(
            "smtp_from {:?} is not an address ({e}): set ORDERFLOW_SMTP_FROM, e.g. \"orderflow <orders@example.com>\"",
            s.from
        )
    })?;
    if s.tls == SmtpTls::None {
        return Ok((from, None));
    }
    let mut params = TlsParameters::builder(s.host.clone());
    if let Some(path) = &s.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            format!("smtp_ca_file {path}: {e}: set ORDERFLOW_SMTP_CA_FILE to a readable PEM file")
        })?;
        let ca = Certificate::from_pem(&pem)
            .map_err(|e| format!("smtp_ca_file {path} holds no PEM certificate ({e})"))?;
        params = params.add_root_certificate(ca);
    }
    let params = params
        .build()
        .map_err(|e| format!("TLS for the SMTP server {}: {e}", s.host))?;
    Ok((from, Some(params)))
}

impl SmtpChannel {
    /// Whether `s` can work (checked when the configuration is read).
    pub fn check(s: &SmtpSettings) -> Result<(), String> {
        checked(s).map(drop)
    }

    /// The channel (inside a Tokio runtime: its connection pool lives
    /// there). Nothing is connected yet.
    pub fn new(s: &SmtpSettings) -> Result<Self, String> {
        let (from, tls) = checked(s)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .timeout(Some(s.timeout));
        if let Some(params) = tls {
            builder = builder.tls(match s.tls {
                SmtpTls::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let Some((user, password)) = &s.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            id_domain: from.email.domain().to_string(),
            from,
        })
    }

    fn message(&self, n: &Notification, to: &str) -> Result<Message, ChannelError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| ChannelError::Refused(format!("{to:?} is not an address: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(n.subject.clone())
            .message_id(Some(format!("<{}@{}>", n.notification_id, self.id_domain)))
            .header(ContentType::TEXT_PLAIN)
            .body(n.message.clone())
            .map_err(|e| ChannelError::Refused(format!("the email could not be written: {e}")))
    }
}

/// A refusal worth retrying unless the server said no to this very message:
/// a 5xx about the login or TLS is the configuration's fault (every email
/// would fail alike, and the breaker opens), any other 5xx is the message's.
pub fn classify(status: Option<u16>, permanent: bool, error: String) -> ChannelError {
    match status {
        Some(530 | 534 | 535 | 538) => ChannelError::Unavailable(format!(
            "the SMTP server refused the login or wants TLS (check ORDERFLOW_SMTP_USERNAME, ORDERFLOW_SMTP_PASSWORD and ORDERFLOW_SMTP_TLS): {error}"
        )),
        _ if permanent => ChannelError::Refused(error),
        _ => ChannelError::Unavailable(error),
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn needs_address(&self) -> bool {
        true
    }

    async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        let Some(to) = n.email.as_deref() else {
            return Err(ChannelError::Refused(format!(
                "order {} has no email address",
                n.order_id
            )));
        };
        let message = self.message(n, to)?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| classify(e.status().map(u16::from), e.is_permanent(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_modes_are_named_and_anything_else_is_refused() {
        assert_eq!(SmtpTls::parse("starttls"), Ok(SmtpTls::StartTls));
        assert_eq!(SmtpTls::parse("tls"), Ok(SmtpTls::Implicit));
        assert_eq!(SmtpTls::parse("none"), Ok(SmtpTls::None));
        assert!(SmtpTls::parse("ssl")
            .unwrap_err()
            .contains("starttls, tls or none"));
    }

    #[test]
    fn a_refused_login_is_retried_and_a_refused_message_is_not() {
        for login in [530, 534, 535, 538] {
            assert!(
                matches!(classify(Some(login), true, "no".into()), ChannelError::Unavailable(m) if m.contains("ORDERFLOW_SMTP_PASSWORD")),
                "{login}"
            );
        }
        assert!(
            matches!(classify(Some(550), true, "no such user".into()), ChannelError::Refused(m) if m == "no such user")
        );
        assert!(
            matches!(classify(Some(451), false, "later".into()), ChannelError::Unavailable(m) if m == "later")
        );
        assert!(matches!(
            classify(None, false, "connection refused".into()),
            ChannelError::Unavailable(_)
        ));
    }

    #[tokio::test]
    async fn settings_that_cannot_work_name_the_variable_to_fix() {
        let settings = SmtpSettings {
            host: "smtp.example.com".into(),
            port: 587,
            tls: SmtpTls::StartTls,
            credentials: None,
            from: "orderflow <orders@example.com>".into(),
            ca_file: None,
            timeout: Duration::from_secs(2),
        };
        let channel = SmtpChannel::new(&settings).expect("valid settings");
        assert_eq!(channel.id_domain, "example.com");
        assert_eq!(SmtpChannel::check(&settings), Ok(()));
        let bad_from = SmtpSettings {
            from: "orders".into(),
            ..settings.clone()
        };
        assert!(SmtpChannel::check(&bad_from)
            .unwrap_err()
            .contains("ORDERFLOW_SMTP_FROM"));
        assert!(SmtpChannel::new(&bad_from)
            .err()
            .unwrap()
            .contains("ORDERFLOW_SMTP_FROM"));
        let no_ca = SmtpSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..settings.clone()
        };
        assert!(SmtpChannel::check(&no_ca)
            .unwrap_err()
            .contains("ORDERFLOW_SMTP_CA_FILE"));
        let not_pem = SmtpSettings {
            ca_file: Some("/etc/hostname".into()),
            ..settings
        };
        assert!(SmtpChannel::check(&not_pem)
            .unwrap_err()
            .contains("holds no PEM certificate"));
        // Without TLS the CA file is not read at all.
        let plain = SmtpSettings {
            tls: SmtpTls::None,
            ..no_ca
        };
        assert_eq!(SmtpChannel::check(&plain), Ok(()));
    }
}
