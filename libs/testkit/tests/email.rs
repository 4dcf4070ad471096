//! Notifications by email through a real SMTP server: Mailpit (built from
//! its Go module) receives what the notification service's smtp channel
//! sends, and its HTTP API shows each message as a mail client would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orderflow_companions::{Mailpit, MailpitOptions};
use orderflow_envelope::{
    Address, Codec, Event, HttpSchemaRegistry, Money, OrderCreated, OrderItem, PaymentProcessed,
};
use orderflow_testkit::{order_body, Duplicator, Options, Stack};
use serde_json::Value;

/// One received email: (recipient, subject, Message-ID).
type Mail = (String, String, String);

async fn mails(mailpit: &Mailpit) -> Result<Vec<Mail>> {
    let body: Value = reqwest::get(format!("{}/api/v1/messages?limit=500", mailpit.http_url))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut mails: Vec<Mail> = body["messages"]
        .as_array()
        .context("messages")?
        .iter()
        .map(|m| {
            let to: Vec<&str> = m["To"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["Address"].as_str())
                .collect();
            (
                to.join(","),
                m["Subject"].as_str().unwrap_or_default().to_string(),
                m["MessageID"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    mails.sort();
    Ok(mails)
}

/// The mailbox once it holds `n` emails (and, a moment later, still `n`).
async fn mailbox_with(mailpit: &Mailpit, n: usize) -> Result<Vec<Mail>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = mails(mailpit).await?;
        if got.len() >= n {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return mails(mailpit).await;
        }
        if Instant::now() > deadline {
            bail!("{} emails after 30 s, expected {n}: {got:#?}", got.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `event` onto its topic as its owning service would.
async fn publish(codec: &Codec, stack: &Stack, event: Event) -> Result<(i32, i64)> {
    let (partition, offset, _) = stack.publish_as_owner(codec, &event).await?;
    Ok((partition, offset))
}

fn smtp_options(mailpit: &Mailpit, tls: &str) -> Options {
    let mut options = Options::default();
    options.notification.channel = "smtp".into();
    options.notification.smtp_host = Some("127.0.0.1".into());
    options.notification.smtp_port = mailpit.smtp_port;
    options.notification.smtp_tls = tls.into();
    options.notification.smtp_from = Some("orderflow <orders@orderflow.test>".into());
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_email_per_outcome_to_the_tokens_address_and_none_twice() -> Result<()> {
    let mailpit = Mailpit::start_anywhere(&MailpitOptions::default()).await?;
    let stack = Stack::start_with(smtp_options(&mailpit, "none")).await?;
    // Every event of every saga is delivered twice.
    let duplicator = Duplicator::start(&stack.bootstrap)?;
    let cases = [
        (
            "c-m1",
            "ada@example.com",
            order_body("c-m1", "SKU-001", 1, "tok_visa", "DE"),
            vec![
                ("payment_received", "Payment received"),
                ("shipped", "Shipped"),
            ],
        ),
        (
            "c-m2",
            "bob@example.com",
            order_body("c-m2", "SKU-002", 500, "tok_visa", "DE"),
            vec![("out_of_stock", "Cancelled: out of stock")],
        ),
        (
            "c-m3",
            "cy@example.com",
            order_body("c-m3", "SKU-003", 1, "tok_chargeDeclined", "DE"),
            vec![("payment_declined", "Cancelled: payment declined")],
        ),
        (
            "c-m4",
            "di@example.com",
            order_body("c-m4", "SKU-004", 1, "tok_visa", "AQ"),
            vec![
                ("payment_received", "Payment received"),
                ("shipping_failed", "Cancelled: we could not ship it"),
            ],
        ),
    ];
    let mut expected = Vec::new();
    for (customer, email, body, outcomes) in &cases {
        stack.give_email(customer, email);
        let order_id = stack.place(body).await?;
        for (kind, subject) in outcomes {
            expected.push((
                email.to_string(),
                format!("Order {order_id}: {subject}"),
                format!("ntf-{kind}-{order_id}@orderflow.test"),
            ));
        }
        stack.wait_terminal(&order_id).await?;
    }
    // A customer whose token has no email claim gets no email, and their
    // order goes its way.
    let no_address = stack
        .place(&order_body("c-m5", "SKU-001", 1, "tok_visa", "DE"))
        .await?;
    let view = stack.wait_terminal(&no_address).await?;
    assert_eq!(view.status, "SHIPPED");
    expected.sort();

    let got = mailbox_with(&mailpit, expected.len()).await?;
    stack.wait_idle().await?;
    let copies = duplicator.stop().await?;
    assert!(copies > 0, "the duplicator copied nothing");
    stack.wait_idle().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        got, expected,
        "one email per outcome, to the token's address"
    );
    assert_eq!(
        mails(&mailpit).await?,
        expected,
        "after {copies} redelivered events: none twice"
    );

    // The customers see the same notifications through the API.
    for (customer, _, _, outcomes) in &cases {
        let channels: BTreeMap<String, String> = stack
            .notifications(customer)
            .await?
            .into_iter()
            .map(|n| (n.kind, n.channel))
            .collect();
        let wanted: BTreeMap<String, String> = outcomes
            .iter()
            .map(|(k, _)| (k.to_string(), "smtp".to_string()))
            .collect();
        assert_eq!(channels, wanted, "{customer}");
    }
    // The body says what happened.
    let latest: Value = reqwest::get(format!("{}/api/v1/message/latest", mailpit.http_url))
        .await?
        .json()
        .await?;
    assert!(
        latest["Text"]
            .as_str()
            .unwrap_or_default()
            .contains("order"),
        "{latest}"
    );
    stack.stop().await
}

/// A self-signed certificate for 127.0.0.1 (openssl's CLI), as (cert, key).
fn certificate(dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .context("running openssl")?;
    anyhow::ensure!(status.success(), "openssl req failed: {status}");
    Ok((cert, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn email_goes_over_starttls_with_a_login_and_a_wrong_password_sends_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = certificate(dir.path())?;
    let mailpit = Mailpit::start_anywhere(&MailpitOptions {
        tls_cert_and_key: Some((cert.clone(), key)),
        require_starttls: true,
        auth: Some("orderflow:s3cret\n".into()),
    })
    .await?;

    // The right login over STARTTLS, trusting the server's certificate.
    let mut options = smtp_options(&mailpit, "starttls");
    options.notification.smtp_username = Some("orderflow".into());
    options.notification.smtp_password = Some("s3cret".into());
    options.notification.smtp_ca_file = Some(cert.display().to_string());
    let stack = Stack::start_with(options.clone()).await?;
    stack.give_email("c-s1", "ada@example.com");
    let order_id = stack
        .place(&order_body("c-s1", "SKU-002", 500, "tok_visa", "DE"))
        .await?;
    stack.wait_terminal(&order_id).await?;
    let got = mailbox_with(&mailpit, 1).await?;
    assert_eq!(
        got,
        [(
            "ada@example.com".to_string(),
            format!("Order {order_id}: Cancelled: out of stock"),
            format!("ntf-out_of_stock-{order_id}@orderflow.test"),
        )]
    );
    stack.stop().await?;

    // A wrong password: the server refuses the login, nothing is sent, and
    // the notification waits (retried, not dead-lettered) for the fix.
    options.notification.smtp_password = Some("wrong".into());
    let stack = Stack::start_with(options).await?;
    stack.give_email("c-s2", "bob@example.com");
    let refused = stack
        .place(&order_body("c-s2", "SKU-002", 500, "tok_visa", "DE"))
        .await?;
    stack.wait_terminal(&refused).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(mails(&mailpit).await?, got, "nothing more arrived");
    let listed = stack.notifications("c-s2").await?;
    assert!(listed.is_empty(), "not sent, so not listed: {listed:?}");
    let letters =
        orderflow_testkit::metrics::scrape(&stack.http, &stack.ops["notification"]).await?;
    assert_eq!(
        letters.sum("orderflow_dead_letters_total", ""),
        0.0,
        "a refused login is not the message's fault"
    );
    assert!(
        letters.sum("orderflow_handler_retries_total", "") > 0.0,
        "it is retried"
    );
    stack.stop().await
}

/// Email settings that cannot work stop the service at once with exit 64,
/// naming the variable to fix; the password is never printed.
#[tokio::test]
async fn smtp_settings_that_cannot_work_stop_the_service_naming_the_variable() -> Result<()> {
    let bin = orderflow_testkit::cli::binary("orderflow-notification")?;
    let dir = tempfile::tempdir()?;
    let good = [
        ("ORDERFLOW_CHANNEL", "smtp"),
        ("ORDERFLOW_SMTP_HOST", "127.0.0.1"),
        ("ORDERFLOW_SMTP_FROM", "orderflow <orders@orderflow.test>"),
        ("ORDERFLOW_SMTP_USERNAME", "orderflow"),
        ("ORDERFLOW_SMTP_PASSWORD", "s3cret-smtp"),
    ];
    let run = |changes: &[(&str, Option<&str>)], args: &[&str]| {
        let mut command = std::process::Command::new(&bin);
        command
            .args(args)
            .envs(orderflow_testkit::cli::service_env())
            .env(
                "ORDERFLOW_DATABASE_URL",
                format!("sqlite://{}/n.db", dir.path().display()),
            )
            .env("ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
            .envs(good);
        for (name, value) in changes {
            match value {
                Some(v) => command.env(name, v),
                None => command.env_remove(name),
            };
        }
        command.output()
    };
    for (changes, names) in [
        (vec![("ORDERFLOW_SMTP_HOST", None)], "ORDERFLOW_SMTP_HOST"),
        (vec![("ORDERFLOW_SMTP_FROM", None)], "ORDERFLOW_SMTP_FROM"),
        (
            vec![("ORDERFLOW_SMTP_FROM", Some("orders"))],
            "ORDERFLOW_SMTP_FROM",
        ),
        (
            vec![("ORDERFLOW_SMTP_TLS", Some("ssl"))],
            "ORDERFLOW_SMTP_TLS",
        ),
        (
            vec![("ORDERFLOW_SMTP_PASSWORD", None)],
            "ORDERFLOW_SMTP_PASSWORD",
        ),
        (
            vec![("ORDERFLOW_SMTP_CA_FILE", Some("/nonexistent/ca.pem"))],
            "ORDERFLOW_SMTP_CA_FILE",
        ),
    ] {
        let out = run(&changes, &[])?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{changes:?}: {err}");
        assert!(
            err.contains(names),
            "{changes:?} should name {names}: {err}"
        );
        assert!(!err.contains("s3cret-smtp"), "{err}");
    }
    let printed = run(&[], &["--print-config"])?;
    let shown = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.status.success(), "{printed:?}");
    assert!(
        shown.contains("smtp_host") && !shown.contains("s3cret-smtp"),
        "{shown}"
    );
    Ok(())
}

/// The payment's news can overtake the order's creation (it comes on another
/// topic): the email waits for the address instead of being lost or retried
/// behind the very event it waits for, and goes once the OrderCreated is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_that_overtakes_its_order_is_mailed_once_the_address_is_known() -> Result<()> {
    let mailpit = Mailpit::start_anywhere(&MailpitOptions::default()).await?;
    let stack = Stack::start_with(smtp_options(&mailpit, "none")).await?;
    let codec = Codec::new(std::sync::Arc::new(HttpSchemaRegistry::new(
        &stack.registry,
    )));
    let publish = |event: Event| publish(&codec, &stack, event);
    let address = || Address {
        name: "Eve".into(),
        line1: "1 Main St".into(),
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
    };
    let order_id = "o-overtaken";
    publish(Event::PaymentProcessed(PaymentProcessed {
        order_id: order_id.into(),
        customer_id: "c-ov".into(),
        payment_id: "pay_ov".into(),
        amount: Money::new(999, "EUR"),
        shipping_address: address(),
    }))
    .await?;
    stack.wait_idle().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mails(&mailpit).await?, [], "no address yet, no email");

    publish(Event::OrderCreated(OrderCreated {
        order_id: order_id.into(),
        customer_id: "c-ov".into(),
        items: vec![OrderItem {
            sku: "SKU-NONE".into(),
            quantity: 1,
        }],
        payment_token: "tok_visa".into(),
        shipping_address: address(),
        placed_at: 0,
        customer_email: Some("eve@example.com".into()),
    }))
    .await?;
    let got = mailbox_with(&mailpit, 1).await?;
    stack.wait_idle().await?;
    assert_eq!(
        mails(&mailpit).await?,
        [(
            "eve@example.com".to_string(),
            format!("Order {order_id}: Payment received"),
            format!("ntf-payment_received-{order_id}@orderflow.test"),
        )],
        "once, to the address the OrderCreated brought: {got:?}"
    );
    stack.stop().await
}

/// An order's creation and its payment come on different topics, so two
/// notification replicas on one PostgreSQL database (the chart runs two)
/// can handle them at the same moment. Each transaction waits here a moment
/// before its commit, as on a busy database: the one that records the
/// address must still find the email that waits for it, or the one that
/// records the email must see the address. Every order gets its one email.
/// Replicas share a database on PostgreSQL only (SQLite is one process's
/// store): on SQLite one replica handles both topics, and every order must
/// still get its one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_and_its_payment_on_two_replicas_at_once_still_mail_once() -> Result<()> {
    const ORDERS: usize = 24;
    const PREFIX: &str = "o-race-";
    // The only test of this binary that sets the hook: every transaction
    // that handles an event of these orders waits 1 s before COMMIT, after
    // its reads and writes.
    orderflow_runtime::fault::set_hook(|point, keys| {
        if point == orderflow_runtime::fault::FaultPoint::BeforeCommit
            && keys.iter().any(|k| k.starts_with(PREFIX))
        {
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_secs(1)));
        }
    });
    let mailpit = Mailpit::start_anywhere(&MailpitOptions::default()).await?;
    let mut options = smtp_options(&mailpit, "none");
    options.notification_replicas = if std::env::var_os("ORDERFLOW_TEST_DATABASE").is_some() {
        2
    } else {
        1
    };
    // An order's two events on partitions of different numbers, which the
    // two replicas own one each more often than not (with equal counts the
    // assignment keeps same-numbered partitions together).
    options.topic_partitions = vec![("payments", 5)];
    let stack = Stack::start_with(options).await?;
    let codec = Codec::new(std::sync::Arc::new(HttpSchemaRegistry::new(
        &stack.registry,
    )));
    let address = || Address {
        name: "Ria".into(),
        line1: "1 Main St".into(),
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
    };
    // The second replica joins the group after the first. Orders without an
    // address (no email) give every partition a committed offset, so each
    // replica reports the lag of the partitions it owns: wait until the
    // second owns some of both topics.
    for n in 0..ORDERS {
        let order_id = format!("o-warm-{n:02}");
        publish(
            &codec,
            &stack,
            Event::PaymentProcessed(PaymentProcessed {
                order_id: order_id.clone(),
                customer_id: "c-warm".into(),
                payment_id: format!("pay_w{n}"),
                amount: Money::new(999, "EUR"),
                shipping_address: address(),
            }),
        )
        .await?;
        publish(
            &codec,
            &stack,
            Event::OrderCreated(OrderCreated {
                order_id,
                customer_id: "c-warm".into(),
                items: vec![],
                payment_token: "tok_visa".into(),
                shipping_address: address(),
                placed_at: 0,
                customer_email: None,
            }),
        )
        .await?;
    }
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(second) = stack.notification_ops.get(1) {
        let scrape = orderflow_testkit::metrics::scrape(&http, second).await?;
        let lag = scrape.lines("orderflow_consumer_lag");
        let owns = |topic: &str| lag.contains(&format!("topic=\"{topic}\""));
        if owns("orders") && owns("payments") {
            break;
        }
        if Instant::now() > deadline {
            bail!("the second notification replica owns no partitions of orders and payments after 60 s: {lag}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stack.wait_idle().await?;
    let order_id = |n: usize| format!("{PREFIX}{n:02}");
    // The payments first; while they are being handled, the orders.
    let payments = (0..ORDERS).map(|n| {
        publish(
            &codec,
            &stack,
            Event::PaymentProcessed(PaymentProcessed {
                order_id: order_id(n),
                customer_id: "c-race".into(),
                payment_id: format!("pay_{n}"),
                amount: Money::new(999, "EUR"),
                shipping_address: address(),
            }),
        )
    });
    for sent in futures::future::join_all(payments).await {
        sent?;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let orders = (0..ORDERS).map(|n| {
        publish(
            &codec,
            &stack,
            Event::OrderCreated(OrderCreated {
                order_id: order_id(n),
                customer_id: "c-race".into(),
                items: vec![],
                payment_token: "tok_visa".into(),
                shipping_address: address(),
                placed_at: 0,
                customer_email: Some(format!("ria{n:02}@example.com")),
            }),
        )
    });
    for sent in futures::future::join_all(orders).await {
        sent?;
    }
    let got = mailbox_with(&mailpit, ORDERS).await;
    stack.wait_idle().await?;
    let expected: Vec<String> = (0..ORDERS)
        .map(|n| format!("ria{n:02}@example.com"))
        .collect();
    let mut to: Vec<String> = mails(&mailpit).await?.into_iter().map(|m| m.0).collect();
    to.sort();
    stack.stop().await?;
    got?;
    assert_eq!(to, expected, "one email per order, none lost, none twice");
    Ok(())
}

/// A customer's email goes to their token's address and nowhere else: an
/// order naming another is refused and nothing is placed; an operator
/// placing an order for a customer may name one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_cannot_send_their_emails_elsewhere() -> Result<()> {
    let stack = Stack::start().await?;
    stack.give_email("c-e1", "ada@example.com");
    let mut elsewhere = order_body("c-e1", "SKU-001", 1, "tok_visa", "DE");
    elsewhere["customer_email"] = "eve@example.com".into();
    let refused = stack.post_order(&elsewhere, None).await?;
    assert_eq!(refused.status().as_u16(), 403);
    let problem: Value = refused.json().await?;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("email claim"),
        "{problem}"
    );
    let mut same = order_body("c-e1", "SKU-001", 1, "tok_visa", "DE");
    same["customer_email"] = "ada@example.com".into();
    let placed = stack.place(&same).await?;
    stack.wait_terminal(&placed).await?;
    stack.wait_idle().await?;
    let listed: Value = stack
        .http
        .get(stack.url("/v1/customers/c-e1/orders"))
        .send()
        .await?
        .json()
        .await?;
    let ids: Vec<&str> = listed["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["order_id"].as_str())
        .collect();
    assert_eq!(ids, [placed.as_str()], "the refused order was not placed");

    // An operator names the customer and, if they like, the address.
    let mut by_operator = order_body("c-e2", "SKU-001", 1, "tok_visa", "DE");
    by_operator["customer_email"] = "bob@example.com".into();
    let accepted = stack
        .http
        .post(stack.url("/v1/orders"))
        .json(&by_operator)
        .send()
        .await?;
    assert_eq!(
        accepted.status().as_u16(),
        202,
        "{:?}",
        accepted.text().await
    );
    // A malformed address is a validation error, whoever sends it.
    by_operator["customer_email"] = "bob at example.com".into();
    let invalid = stack
        .http
        .post(stack.url("/v1/orders"))
        .json(&by_operator)
        .send()
        .await?;
    assert_eq!(invalid.status().as_u16(), 422);
    stack.stop().await
}
