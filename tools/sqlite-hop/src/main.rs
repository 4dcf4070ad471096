//! What handing each SQLite statement to another thread costs, apart from
//! the services: the same transactions run three ways, each measured in CPU
//! (user + system, this process) per statement.
//!
//! - sqlx's `AnyConnection`, as the services ran SQLite before the runtime's
//!   own SQL layer: sqlx keeps each connection on a thread of its own and
//!   hands every statement there and its answer back;
//! - rusqlite with cached statements on a thread that owns the connection,
//!   handed one closure per transaction (the design not taken);
//! - rusqlite on the calling thread, as the services write to SQLite now
//!   (`libs/runtime/src/sql`).
//!
//! Each transaction is five `INSERT … ON CONFLICT DO NOTHING` into an
//! indexed table and five `SELECT` by key, with WAL and `synchronous=FULL`
//! as the services open SQLite. `make bench` prints the figures as (i).
//!
//!   orderflow-sqlite-hop [transactions]    (default 2,000)

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Result};
use nix::sys::resource::{getrusage, UsageWho};
use sqlx::{ConnectOptions, Connection, Row};

const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;";
const SCHEMA: [&str; 2] = [
    "CREATE TABLE t (id TEXT PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX t_k ON t (k)",
];
const INSERT: &str =
    "INSERT INTO t (id, k, v, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const SELECT: &str = "SELECT v, body FROM t WHERE id = $1";
const BODY: &str = "a body the size of a small event's payload, more or less";
/// Pairs of an INSERT and a SELECT per transaction.
const PAIRS: usize = 5;
/// Statements per transaction: the pairs, BEGIN and COMMIT.
const STATEMENTS: usize = PAIRS * 2 + 2;

fn cpu() -> Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let us = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    Ok(us(usage.user_time()) + us(usage.system_time()))
}

fn id(transaction: usize, pair: usize) -> String {
    format!("{transaction}-{pair}")
}

async fn sqlx_any(path: &str, transactions: usize) -> Result<(Duration, i64)> {
    sqlx::any::install_default_drivers();
    let mut conn = format!("sqlite://{path}?mode=rwc")
        .parse::<sqlx::any::AnyConnectOptions>()?
        .connect()
        .await?;
    for statement in PRAGMAS.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    for statement in SCHEMA {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    let start = cpu()?;
    let mut sum = 0;
    for n in 0..transactions {
        let mut tx = conn.begin().await?;
        for pair in 0..PAIRS {
            let id = id(n, pair);
            sqlx::query(INSERT)
                .bind(&id)
                .bind(format!("k{}", n % 97))
                .bind(pair as i64)
                .bind(BODY)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(SELECT).bind(&id).fetch_one(&mut *tx).await?;
            sum += row.try_get::<i64, _>(0)?;
        }
        tx.commit().await?;
    }
    Ok((cpu()? - start, sum))
}

fn open(path: &str) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(PRAGMAS)?;
    for statement in SCHEMA {
        conn.execute(statement, [])?;
    }
    Ok(conn)
}

/// One transaction of the workload on `conn`; the sum of what it read.
fn transaction(conn: &mut rusqlite::Connection, n: usize) -> rusqlite::Result<i64> {
    let tx = conn.transaction()?;
    let mut sum = 0;
    for pair in 0..PAIRS {
        let id = id(n, pair);
        tx.prepare_cached(INSERT)?.execute(rusqlite::params![
            id,
            format!("k{}", n % 97),
            pair as i64,
            BODY
        ])?;
        sum += tx
            .prepare_cached(SELECT)?
            .query_row([&id], |row| row.get::<_, i64>(0))?;
    }
    tx.commit()?;
    Ok(sum)
}

fn rusqlite_here(path: &str, transactions: usize) -> Result<(Duration, i64)> {
    let mut conn = open(path)?;
    let start = cpu()?;
    let mut sum = 0;
    for n in 0..transactions {
        sum += transaction(&mut conn, n)?;
    }
    Ok((cpu()? - start, sum))
}

type Job = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

async fn rusqlite_own_thread(path: &str, transactions: usize) -> Result<(Duration, i64)> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let mut conn = open(path)?;
    let owner = std::thread::spawn(move || {
        while let Ok(job) = queue.recv() {
            job(&mut conn);
        }
    });
    let start = cpu()?;
    let mut sum = 0;
    for n in 0..transactions {
        let (done, result) = tokio::sync::oneshot::channel();
        jobs.send(Box::new(move |conn: &mut rusqlite::Connection| {
            let _ = done.send(transaction(conn, n));
        }))
        .map_err(|_| anyhow::anyhow!("the connection's thread ended"))?;
        sum += result.await??;
    }
    let spent = cpu()? - start;
    drop(jobs);
    if owner.join().is_err() {
        bail!("the connection's thread panicked");
    }
    Ok((spent, sum))
}

#[tokio::main]
async fn main() -> Result<()> {
    let transactions: usize = match std::env::args().nth(1) {
        None => 2_000,
        Some(n) => match n.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: orderflow-sqlite-hop [transactions, a positive number]");
                std::process::exit(64);
            }
        },
    };
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let expected = (transactions * (0..PAIRS).sum::<usize>()) as i64;
    let per_statement =
        |spent: Duration| spent.as_secs_f64() * 1e6 / (transactions * STATEMENTS) as f64;
    let mut results = Vec::new();
    for (what, key, measured) in [
        (
            "sqlx AnyConnection, a hop per statement",
            "sqlx_any_us",
            sqlx_any(&path("a.db"), transactions).await?,
        ),
        (
            "rusqlite on its own thread, a hop per transaction",
            "rusqlite_thread_us",
            rusqlite_own_thread(&path("b.db"), transactions).await?,
        ),
        (
            "rusqlite on the calling thread",
            "rusqlite_here_us",
            rusqlite_here(&path("c.db"), transactions)?,
        ),
    ] {
        let (spent, sum) = measured;
        if sum != expected {
            bail!("{what} read {sum}, not {expected}");
        }
        println!(
            "{what:52} {:6.1} µs of CPU per statement",
            per_statement(spent)
        );
        results.push(format!("{key}={:.1}", per_statement(spent)));
    }
    println!(
        "RESULT statements={} {}",
        transactions * STATEMENTS,
        results.join(" ")
    );
    Ok(())
}
