//! The five services as the simulation runs them: each a database (SQLite
//! files, or PostgreSQL databases with `ORDERFLOW_TEST_DATABASE`, as the
//! test kit makes them) with its migrations, and one or two replicas of its
//! consumer over it, the real handlers inside. Made once per process; every
//! run empties the tables.

use std::sync::Arc;

use orderflow_envelope::Codec;
use orderflow_runtime::resilience::Policy;
use orderflow_runtime::simulation::Member;
use orderflow_runtime::sql;
use orderflow_runtime::sqlx;
use orderflow_runtime::telemetry::{Metrics, SagaMetrics};
use orderflow_runtime::{Backend, Database, Emitter, Handler, ServiceSpec};

use crate::dice::Dice;
use crate::hiccups::Hiccups;
use crate::outside::{Mailbox, Provider, Registry};

/// One service: its database and its replicas.
pub struct Service {
    pub spec: &'static ServiceSpec,
    pub db: Database,
    pub replicas: Vec<Arc<Member>>,
}

/// Everything a run touches, reset between runs.
pub struct World {
    pub dice: Arc<Dice>,
    pub provider: Arc<Provider>,
    pub mailbox: Arc<Mailbox>,
    pub codec: Arc<Codec>,
    pub services: Vec<Service>,
    pub backend: Backend,
}

/// The services' specs, in the order the world holds them.
pub const ORDER: usize = 0;
pub const INVENTORY: usize = 1;
pub const PAYMENT: usize = 2;
pub const SHIPPING: usize = 3;
pub const NOTIFICATION: usize = 4;

/// The databases of one simulation process, migrated once.
pub struct Databases {
    dbs: Vec<Database>,
    codec: Arc<Codec>,
    _dir: tempfile::TempDir,
}

fn specs() -> [&'static ServiceSpec; 5] {
    [
        &orderflow_order::SPEC,
        &orderflow_inventory::SPEC,
        &orderflow_payment::SPEC,
        &orderflow_shipping::SPEC,
        &orderflow_notification::SPEC,
    ]
}

impl Databases {
    pub async fn open() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let codec = Arc::new(Codec::new(Arc::new(Registry::default())));
        let mut dbs = Vec::new();
        for spec in specs() {
            let url = orderflow_testkit::database_url(dir.path(), spec.name)
                .await
                .map_err(|e| format!("{e:#}"))?;
            let db = Database::connect(&url, 4, false)
                .await
                .map_err(|e| e.to_string())?;
            db.migrate(&spec.migrations)
                .await
                .map_err(|e| e.to_string())?;
            codec
                .register(spec.produces)
                .await
                .map_err(|e| e.to_string())?;
            dbs.push(db);
        }
        Ok(Self {
            dbs,
            codec,
            _dir: dir,
        })
    }

    pub fn backend(&self) -> Backend {
        self.dbs[0].backend()
    }

    /// A fresh world over these databases (emptied first) for one seed.
    pub async fn world(&self, seed: u64, replicas: usize) -> Result<World, String> {
        for db in &self.dbs {
            empty(db)
                .await
                .map_err(|e| format!("emptying a database: {e}"))?;
        }
        let dice = Arc::new(Dice::new(seed));
        let provider = Arc::new(Provider::new(dice.clone()));
        let mailbox = Arc::new(Mailbox::new(dice.clone()));
        let handlers = |i: usize| -> Arc<dyn Handler> {
            // One attempt per call and no breaker to speak of: the
            // simulation's dice decide every answer, the clock none.
            let policy = |name| {
                Policy::new(name).with_attempts(1).with_breaker(
                    orderflow_runtime::resilience::BreakerSettings {
                        failure_rate: 100,
                        minimum_calls: u32::MAX,
                        open_for: std::time::Duration::from_millis(1),
                    },
                )
            };
            match i {
                ORDER => orderflow_order::handler(SagaMetrics::register(&Metrics::new())),
                INVENTORY => orderflow_inventory::handler(),
                PAYMENT => orderflow_payment::handler(provider.clone(), policy("payment-provider")),
                SHIPPING => orderflow_shipping::handler(orderflow_shipping::domain::Carrier {
                    name: "sim".into(),
                    unserved_countries: vec!["AQ".into()],
                }),
                NOTIFICATION => {
                    orderflow_notification::handler(mailbox.clone(), policy("notification-channel"))
                }
                _ => unreachable!("five services"),
            }
        };
        let services = specs()
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Service {
                spec,
                db: self.dbs[i].clone(),
                replicas: (0..replicas)
                    .map(|_| {
                        let handler = Arc::new(Hiccups::new(handlers(i), dice.clone()));
                        Arc::new(Member::new(
                            spec,
                            handler,
                            self.dbs[i].clone(),
                            Emitter::new(spec.name, self.codec.clone()),
                        ))
                    })
                    .collect(),
            })
            .collect();
        Ok(World {
            dice,
            provider,
            mailbox,
            codec: self.codec.clone(),
            services,
            backend: self.dbs[0].backend(),
        })
    }
}

/// Deletes every row of every table but the migrations' own.
async fn empty(db: &Database) -> Result<(), sqlx::Error> {
    let list = match db.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE '_sqlx%' AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT CAST(tablename AS TEXT) AS name FROM pg_tables
             WHERE schemaname = current_schema() AND tablename NOT LIKE '_sqlx%'"
        }
    };
    let tables: Vec<String> = sql::query(list)
        .fetch_all(db.reader())
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?;
    let mut conn = db.acquire().await?;
    for table in tables {
        sql::query(&format!("DELETE FROM {table}"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}
