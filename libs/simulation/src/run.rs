//! One seeded run: a storm of orders and faults, then a calm in which the
//! saga must finish; then the invariants. Each step is one choice of the
//! dice: place an order, relay a service's outbox, let a replica take a
//! batch (messages from its partitions beside the events it holds: heads
//! released to it, outcomes of its calls to record, deadline steps), make a
//! call, resume stalled heads, crash a replica before or after a commit,
//! rebalance a group, expire its inbox or its offsets, replay an old event,
//! restock a SKU. On PostgreSQL two replicas of a service may apply their
//! batches at the same time. What the consumer does after a batch —
//! finish the offset, hold a failed event's key and copy it to a retry tier,
//! run the step's deadline after the last tier, dead-letter and release —
//! follows the runtime's worker, with attempts counted instead of time.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use orderflow_api::{MoneyView, OrderLine, Payment, PlaceOrder, ShippingAddress};
use orderflow_order::placement::{Placement, PlacementContext};
use orderflow_runtime::simulation::{self as sim, Ended, Message, Parked, ParkedEvent, Task};
use orderflow_runtime::{Backend, Emitter, ExternalCall, HandlerError};

use crate::broker::Broker;
use crate::world::{World, INVENTORY, ORDER};

/// Attempts before the step's deadline (the worker's retry tiers, counted).
const DEADLINE_ATTEMPTS: u32 = 3;
const SKUS: [&str; 3] = ["SKU-1", "SKU-2", "SKU-3"];
pub const INITIAL_STOCK: i64 = 6;

fn price() -> MoneyView {
    MoneyView {
        amount_minor: 1_000,
        currency: "EUR".into(),
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub orders: usize,
    /// Steps of the storm.
    pub steps: usize,
    pub replicas: usize,
}

enum Kind {
    Handle,
    Call(Box<dyn ExternalCall>),
    Record(Box<dyn ExternalCall>),
    Deadline(String),
}

/// Work a replica holds: an event to handle, a call to make, an outcome to
/// record, a deadline step.
struct Job {
    message: Message,
    /// The message read from the broker it stands for, to finish once done.
    delivered: Option<Message>,
    kind: Kind,
    attempts: u32,
    /// Whether a call made for it resolves an outcome after the deadline.
    resolving: bool,
    /// Whether it holds its key's lane (everything but resumed heads).
    laned: bool,
}

impl Job {
    /// A stored event handed to the replica: the next head its key released
    /// (`laned`: it holds the key's lane), or a stalled head it claimed.
    fn stored(event: ParkedEvent, laned: bool) -> Self {
        Self {
            message: event.into(),
            delivered: None,
            kind: Kind::Handle,
            attempts: 0,
            resolving: false,
            laned,
        }
    }
}

/// A retry copy's count, by its place in the retry topic.
struct RetryCopy {
    original: Message,
    attempts: u32,
    resolving: bool,
}

pub struct Run<'w> {
    world: &'w World,
    broker: Broker,
    jobs: Vec<Vec<VecDeque<Job>>>,
    retries: HashMap<(String, i64), RetryCopy>,
    /// Storm steps each service stays down for (no batches, no calls).
    down: Vec<usize>,
    pub placed: usize,
    pub restocked: BTreeMap<String, i64>,
    /// What was dead-lettered, to replay as an operator would.
    dead_letters: Vec<Message>,
}

fn retry_topic(service: &str) -> String {
    format!("{service}.retry")
}

impl<'w> Run<'w> {
    pub fn new(world: &'w World, replicas: usize) -> Self {
        let mut broker = Broker::default();
        for s in &world.services {
            let retry = retry_topic(s.spec.name);
            let mut topics: Vec<&str> = s.spec.consumes.iter().map(|t| t.name()).collect();
            topics.push(&retry);
            broker.join(&s.spec.group_id(), &topics, replicas);
        }
        Self {
            world,
            broker,
            jobs: world
                .services
                .iter()
                .map(|_| (0..replicas).map(|_| VecDeque::new()).collect())
                .collect(),
            retries: HashMap::new(),
            down: vec![0; world.services.len()],
            placed: 0,
            restocked: BTreeMap::new(),
            dead_letters: Vec::new(),
        }
    }

    /// Whether a service's replicas run side by side (PostgreSQL, two or
    /// more replicas): their batches may overlap.
    fn side_by_side(&self, replicas: usize) -> bool {
        self.world.backend == Backend::Postgres && replicas > 1
    }

    /// Whether service `s` is down in an outage (no batches, calls, looks).
    fn is_down(&self, s: usize) -> bool {
        self.down[s] > 0
    }

    fn note(&self, line: String) {
        self.world.dice.note(line);
    }

    pub async fn stock(&mut self) -> Result<(), String> {
        let db = &self.world.services[INVENTORY].db;
        for sku in SKUS {
            orderflow_inventory::set_stock(db, sku, INITIAL_STOCK, &price())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The storm: `steps` choices, faults included, placing `orders`.
    pub async fn storm(&mut self, options: Options) -> Result<(), String> {
        let dice = self.world.dice.clone();
        let replicas = options.replicas;
        let services = self.world.services.len();
        for _ in 0..options.steps {
            let s = dice.below(services);
            let r = dice.below(replicas);
            // With replicas side by side (PostgreSQL) the relays run at
            // every step, so that one order's events reach two replicas at
            // once; otherwise relaying is a step of its own.
            let pair = self.side_by_side(replicas);
            if pair {
                for service in 0..services {
                    self.relay(service).await?;
                }
            }
            let weights = [
                if self.placed < options.orders { 30 } else { 0 },
                if pair { 0 } else { 25 }, // relay
                60,                        // a batch
                if pair { 40 } else { 0 },
                25, // a call
                8,  // resume stalled heads
                6,  // crash
                3,  // rebalance
                3,  // inbox expires
                3,  // offsets expire
                3,  // replay an old event
                4,  // restock
                4,  // an outage: the service's backlog grows, its heads stall
            ];
            for service in 0..services {
                if self.down[service] == 0 {
                    continue;
                }
                self.down[service] -= 1;
                if self.down[service] == 0 {
                    // Back: a starting replica first looks for stalled heads.
                    self.note(format!("{} is back", self.name(service)));
                    for r in 0..replicas {
                        self.resume(service, r).await?;
                    }
                }
            }
            match dice.weighted(&weights) {
                0 => self.place().await?,
                1 => {
                    self.relay(s).await?;
                }
                2 => {
                    self.batch(s, r).await?;
                }
                3 => {
                    self.pair(s).await?;
                }
                4 => {
                    self.call(s, r).await?;
                }
                5 => {
                    self.resume(s, r).await?;
                }
                6 => self.crash(s, r),
                7 => {
                    self.note(format!("rebalance {}", self.name(s)));
                    self.broker.rebalance(&self.group(s));
                }
                8 => {
                    let n = self.expire_inbox(s).await?;
                    self.note(format!("inbox of {} expires ({n} rows)", self.name(s)));
                }
                9 => {
                    // Idle past both retentions, often enough: the inbox too.
                    let inbox = dice.chance(500);
                    if inbox {
                        self.expire_inbox(s).await?;
                    }
                    self.note(format!(
                        "offsets of {}{} expire: it reads from the start",
                        self.name(s),
                        if inbox { " and its inbox" } else { "" }
                    ));
                    self.broker.rewind(&self.group(s));
                }
                10 => self.replay(s),
                11 => self.restock().await?,
                _ => {
                    // Its processes die; it comes back after a while.
                    for r in 0..replicas {
                        self.crash(s, r);
                    }
                    self.down[s] = 20 + dice.below(80);
                    self.note(format!(
                        "{} is down for {} steps",
                        self.name(s),
                        self.down[s]
                    ));
                }
            }
        }
        Ok(())
    }

    /// The calm: no faults; every replica works until nothing is left
    /// (on PostgreSQL the two replicas of a service side by side).
    pub async fn calm(&mut self, replicas: usize) -> Result<bool, String> {
        self.world.dice.calm();
        self.down.fill(0);
        // The stuck-saga alert fires; the operator replays every dead
        // letter once (as `orderflow dlq replay` does: to its topic, as it was).
        for letter in std::mem::take(&mut self.dead_letters) {
            self.note(format!(
                "operator replays dead letter {} of {} to {}",
                letter.event_type(),
                letter.key,
                letter.topic
            ));
            self.broker
                .produce(&letter.topic, &letter.key, letter.headers, letter.payload);
        }
        let pairs = self.side_by_side(replicas);
        for _ in 0..400 {
            let mut busy = false;
            for s in 0..self.world.services.len() {
                busy |= self.relay(s).await?;
                for r in 0..replicas {
                    busy |= self.resume(s, r).await?;
                    while self.has_call(s, r) {
                        self.call(s, r).await?;
                        busy = true;
                    }
                }
                if pairs {
                    busy |= self.pair(s).await?;
                }
                for r in 0..replicas {
                    busy |= self.batch(s, r).await?;
                }
            }
            if !busy && self.broker.backlog() == 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn expire_inbox(&self, s: usize) -> Result<u64, String> {
        self.world.services[s].replicas[0]
            .expire_inbox()
            .await
            .map_err(|e| e.to_string())
    }

    fn name(&self, s: usize) -> &'static str {
        self.world.services[s].spec.name
    }

    fn group(&self, s: usize) -> String {
        self.world.services[s].spec.group_id()
    }

    async fn place(&mut self) -> Result<(), String> {
        let dice = &self.world.dice;
        self.placed += 1;
        let order_id = format!("o-{:03}", self.placed);
        let mut lines: Vec<OrderLine> = Vec::new();
        for sku in SKUS {
            if dice.chance(500) || (lines.is_empty() && sku == "SKU-3") {
                lines.push(OrderLine {
                    sku: sku.into(),
                    quantity: 1 + dice.below(3) as i64,
                });
            }
        }
        let token = if dice.chance(100) {
            "tok_chargeDeclined"
        } else {
            "tok_visa"
        };
        let country = if dice.chance(100) { "AQ" } else { "DE" };
        self.note(format!("place {order_id} {lines:?} {token} {country}"));
        let request = PlaceOrder {
            customer_id: Some(format!("c-{}", dice.below(3))),
            items: lines,
            payment: Payment {
                token: token.into(),
            },
            shipping_address: ShippingAddress {
                name: "Ada".into(),
                line1: "1 Main St".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: country.into(),
            },
            customer_email: Some("ada@example.com".into()),
        };
        let context = PlacementContext {
            emitter: Emitter::new("order", self.world.codec.clone()),
            key_ttl_ms: 60_000,
        };
        let mut placement = [Placement::new(
            request,
            None,
            order_id,
            orderflow_runtime::now_millis(),
        )];
        sim::commit(&self.world.services[ORDER].db, &context, &mut placement)
            .await
            .map_err(|e| format!("placing an order: {e}"))
    }

    /// Publishes the service's outbox; in the storm the relay may die
    /// before deleting what it sent (it is sent again).
    async fn relay(&mut self, s: usize) -> Result<bool, String> {
        let delete = !(self.world.dice.is_stormy() && self.world.dice.chance(100));
        let rows = self.world.services[s].replicas[0]
            .outbox(delete)
            .await
            .map_err(|e| e.to_string())?;
        if !rows.is_empty() {
            self.note(format!(
                "relay {}: {} rows{}",
                self.name(s),
                rows.len(),
                if delete { "" } else { " (kept: sent again)" }
            ));
        }
        let any = !rows.is_empty();
        for row in rows {
            self.broker
                .produce(&row.topic, &row.key, row.headers, row.payload);
        }
        Ok(any)
    }

    /// An old event of a topic the service reads is written again (a dead
    /// letter replayed, say).
    fn replay(&mut self, s: usize) {
        let topics = self.world.services[s].spec.consumes;
        let topic = topics[self.world.dice.below(topics.len())].name();
        if let Some(old) = self.broker.old(topic, self.world.dice.below(1 << 16)) {
            self.note(format!(
                "replay {} {} of {}",
                old.topic, old.offset, old.key
            ));
            self.broker
                .produce(&old.topic, &old.key, old.headers, old.payload);
        }
    }

    async fn restock(&mut self) -> Result<(), String> {
        let sku = SKUS[self.world.dice.below(SKUS.len())];
        let n = 2 + self.world.dice.below(6) as i64;
        let db = &self.world.services[INVENTORY].db;
        let stock = orderflow_inventory::stock(db.reader(), sku)
            .await
            .map_err(|e| e.to_string())?
            .map_or(0, |s| s.available);
        orderflow_inventory::set_stock(db, sku, stock + n, &price())
            .await
            .map_err(|e| e.to_string())?;
        *self.restocked.entry(sku.to_string()).or_default() += n;
        self.note(format!("restock {sku} +{n}"));
        Ok(())
    }

    fn crash(&mut self, s: usize, r: usize) {
        self.note(format!("crash {}#{r}", self.name(s)));
        self.broker.crash(&self.group(s), r);
        self.jobs[s][r].clear();
    }

    async fn resume(&mut self, s: usize, r: usize) -> Result<bool, String> {
        if self.is_down(s) {
            return Ok(false);
        }
        let heads = self.world.services[s].replicas[r]
            .claim_stalled()
            .await
            .map_err(|e| e.to_string())?;
        let any = !heads.is_empty();
        for head in heads {
            self.note(format!(
                "{}#{r} resumes the stalled head of {}",
                self.name(s),
                head.key
            ));
            self.jobs[s][r].push_back(Job::stored(head, false));
        }
        Ok(any)
    }

    fn has_call(&self, s: usize, r: usize) -> bool {
        self.jobs[s][r]
            .iter()
            .any(|j| matches!(j.kind, Kind::Call(_)))
    }

    /// Takes a batch for replica `r`: messages from its partitions and the
    /// events it holds.
    fn take(&mut self, s: usize, r: usize) -> Vec<Job> {
        let dice = self.world.dice.clone();
        let mut taken = Vec::new();
        let held = 1 + dice.below(3);
        let mut rest = VecDeque::new();
        while let Some(job) = self.jobs[s][r].pop_front() {
            if taken.len() < held && !matches!(job.kind, Kind::Call(_)) {
                taken.push(job);
            } else {
                rest.push_back(job);
            }
        }
        self.jobs[s][r] = rest;
        let busy: BTreeSet<String> = self.jobs[s][r]
            .iter()
            .chain(taken.iter())
            .filter(|j| j.laned)
            .map(|j| j.message.key.clone())
            .collect();
        // Often, a resumed head's key has a fresh event in the same batch.
        let first: BTreeSet<String> = taken
            .iter()
            .filter(|j| !j.laned && dice.chance(500))
            .map(|j| j.message.key.clone())
            .collect();
        let member = self.world.services[s].replicas[r].clone();
        let retry = retry_topic(self.name(s));
        for delivered in self.broker.deliver(
            &self.group(s),
            r,
            (&busy, &first),
            (1 + dice.below(4), dice.below(8)),
            |m| {
                // A tier's delay: a copy is due at one look in two.
                m.topic != retry || !dice.is_stormy() || dice.chance(500)
            },
        ) {
            let retry = self
                .retries
                .get(&(delivered.topic.clone(), delivered.offset));
            let (message, attempts, resolving) = match retry {
                Some(copy) => (copy.original.clone(), copy.attempts, copy.resolving),
                None => (delivered.clone(), 0, false),
            };
            if !member.reads(&message) {
                self.broker.finish(&self.group(s), r, &delivered);
                continue;
            }
            let kind = if resolving {
                Kind::Deadline("its outcome is still unknown".into())
            } else {
                Kind::Handle
            };
            taken.push(Job {
                message,
                delivered: Some(delivered),
                kind,
                attempts,
                resolving,
                laned: true,
            });
        }
        taken
    }

    fn tasks(jobs: &mut [Job]) -> Vec<Task> {
        jobs.iter_mut()
            .map(|job| {
                let message = job.message.clone();
                match std::mem::replace(&mut job.kind, Kind::Handle) {
                    Kind::Handle => Task::Handle(message),
                    Kind::Record(call) => Task::Record(message, call),
                    Kind::Deadline(error) => {
                        job.kind = Kind::Deadline(error.clone());
                        Task::Deadline(message, error)
                    }
                    Kind::Call(_) => unreachable!("calls are not batched"),
                }
            })
            .collect()
    }

    fn describe(&self, s: usize, r: usize, jobs: &[Job], commit: bool) -> String {
        let items: Vec<String> = jobs
            .iter()
            .map(|j| {
                let what = match j.kind {
                    Kind::Handle => "",
                    Kind::Record(_) => " record",
                    Kind::Deadline(_) => " deadline",
                    Kind::Call(_) => " call",
                };
                let from = match (&j.delivered, j.message.parked_seq) {
                    (Some(d), _) => format!("{}@{}", d.topic, d.offset),
                    (None, Some(seq)) => format!("parked#{seq}"),
                    (None, None) => "held".into(),
                };
                format!(
                    "{}{} {} ({from})",
                    j.message.event_type(),
                    what,
                    j.message.key
                )
            })
            .collect();
        format!(
            "{}#{r} batch{}: {}",
            self.name(s),
            if commit {
                ""
            } else {
                " -> crash before commit"
            },
            items.join(", ")
        )
    }

    /// One replica's batch.
    async fn batch(&mut self, s: usize, r: usize) -> Result<bool, String> {
        if self.is_down(s) {
            return Ok(false);
        }
        if self.world.dice.is_stormy() && self.world.dice.chance(300) {
            // The look for stalled heads runs just as the poll brings more.
            self.resume(s, r).await?;
        }
        let mut jobs = self.take(s, r);
        if jobs.is_empty() {
            return Ok(false);
        }
        let commit = !(self.world.dice.is_stormy() && self.world.dice.chance(40));
        self.note(self.describe(s, r, &jobs, commit));
        let tasks = Self::tasks(&mut jobs);
        let member = self.world.services[s].replicas[r].clone();
        let ended = member.apply(tasks, commit).await;
        self.settle(s, r, jobs, ended).await?;
        Ok(true)
    }

    /// Both replicas of a service apply a batch at the same time
    /// (PostgreSQL: two transactions side by side).
    async fn pair(&mut self, s: usize) -> Result<bool, String> {
        if self.is_down(s) {
            return Ok(false);
        }
        let mut a = self.take(s, 0);
        let mut b = self.take(s, 1);
        if a.is_empty() || b.is_empty() {
            self.jobs[s][0].extend(a);
            self.jobs[s][1].extend(b);
            return Ok(false);
        }
        self.note(format!(
            "together: {} | {}",
            self.describe(s, 0, &a, true),
            self.describe(s, 1, &b, true)
        ));
        let (ta, tb) = (Self::tasks(&mut a), Self::tasks(&mut b));
        let (ma, mb) = (
            self.world.services[s].replicas[0].clone(),
            self.world.services[s].replicas[1].clone(),
        );
        // Deterministic interleaving: the first batch runs all its
        // statements; the second runs until it is done or waits for a lock
        // the first holds; the first commits, then the second. A batch that
        // failed is applied one at a time only after both transactions end.
        let (mut ba, mut bb) = (ma.open(ta).await, mb.open(tb).await);
        let pid = mb.backend_pid(&mut bb).await;
        ma.stage(&mut ba).await;
        let mut first_ended = false;
        {
            let staging = mb.stage(&mut bb);
            tokio::pin!(staging);
            loop {
                tokio::select! {
                    () = &mut staging => break,
                    () = tokio::time::sleep(std::time::Duration::from_millis(2)) => {
                        let Some(pid) = pid else { continue };
                        if mb.waits_for_lock(pid).await {
                            self.note("  (the second waits for the first's lock)".into());
                            ma.end(&mut ba, true).await;
                            first_ended = true;
                            (&mut staging).await;
                            break;
                        }
                    }
                }
            }
        }
        if !first_ended {
            ma.end(&mut ba, true).await;
        }
        mb.end(&mut bb, true).await;
        let ea = ma.finish(ba).await;
        let eb = mb.finish(bb).await;
        self.settle(s, 0, a, ea).await?;
        self.settle(s, 1, b, eb).await?;
        Ok(true)
    }

    /// What the consumer does with each item's end.
    async fn settle(
        &mut self,
        s: usize,
        r: usize,
        jobs: Vec<Job>,
        ended: Vec<Ended>,
    ) -> Result<(), String> {
        if ended.iter().any(|e| matches!(e, Ended::RolledBack)) {
            self.crash(s, r);
            return Ok(());
        }
        if self.world.dice.is_stormy() && self.world.dice.chance(25) {
            self.note(format!("{}#{r} crashes after its commit", self.name(s)));
            self.crash(s, r);
            return Ok(());
        }
        for (mut job, end) in jobs.into_iter().zip(ended) {
            match end {
                Ended::Done(released) => {
                    self.finish(s, r, &job);
                    if let Some(next) = released {
                        self.note(format!(
                            "  {} releases {} (next head)",
                            self.name(s),
                            next.key
                        ));
                        self.jobs[s][r].push_back(Job::stored(next, true));
                        if self.world.dice.is_stormy() && self.world.dice.chance(200) {
                            self.note(format!("{}#{r} dies before it gets there", self.name(s)));
                            self.crash(s, r);
                            return Ok(());
                        }
                    }
                }
                Ended::Waiting => {
                    self.note(format!(
                        "  {} {} {} waits behind its order's head",
                        self.name(s),
                        job.message.event_type(),
                        job.message.key
                    ));
                    self.finish(s, r, &job);
                }
                Ended::Call(call) => {
                    job.resolving |= matches!(job.kind, Kind::Deadline(_));
                    job.kind = Kind::Call(call);
                    self.jobs[s][r].push_back(job);
                }
                Ended::NoDomainFailure => {
                    self.dead_letter(s, r, job, "no domain failure at the deadline")
                        .await?
                }
                Ended::Failed(HandlerError::Permanent(e)) => {
                    self.dead_letter(s, r, job, &e).await?
                }
                Ended::Failed(HandlerError::Transient(e)) => self.failed(s, r, job, &e).await?,
                Ended::RolledBack => unreachable!("handled above"),
            }
        }
        Ok(())
    }

    fn finish(&mut self, s: usize, r: usize, job: &Job) {
        if let Some(delivered) = &job.delivered {
            self.broker.finish(&self.group(s), r, delivered);
        }
    }

    /// Makes replica `r`'s first call, with no transaction held.
    async fn call(&mut self, s: usize, r: usize) -> Result<bool, String> {
        if self.is_down(s) {
            return Ok(false);
        }
        let Some(i) = self.jobs[s][r]
            .iter()
            .position(|j| matches!(j.kind, Kind::Call(_)))
        else {
            return Ok(false);
        };
        let mut job = self.jobs[s][r].remove(i).expect("found");
        let Kind::Call(mut call) = std::mem::replace(&mut job.kind, Kind::Handle) else {
            unreachable!("a call");
        };
        self.note(format!(
            "{}#{r} calls {} for {}",
            self.name(s),
            call.dependency(),
            job.message.key
        ));
        match call.call().await {
            Ok(()) => {
                job.kind = Kind::Record(call);
                self.jobs[s][r].push_back(job);
                Ok(true)
            }
            Err(HandlerError::Permanent(e)) => self.dead_letter(s, r, job, &e).await.map(|()| true),
            Err(HandlerError::Transient(e)) => self.failed(s, r, job, &e).await.map(|()| true),
        }
    }

    /// A transient failure: the step's deadline after its last attempt,
    /// else its key held and a retry copy written.
    async fn failed(
        &mut self,
        s: usize,
        r: usize,
        mut job: Job,
        error: &str,
    ) -> Result<(), String> {
        job.attempts += 1;
        let past_deadline = job.attempts >= DEADLINE_ATTEMPTS;
        if past_deadline && !job.resolving && !matches!(job.kind, Kind::Deadline(_)) {
            self.note(format!(
                "  {} {}: deadline passed ({error})",
                self.name(s),
                job.message.key
            ));
            job.kind = Kind::Deadline(error.to_string());
            self.jobs[s][r].push_back(job);
            return Ok(());
        }
        let resolving = job.resolving || matches!(job.kind, Kind::Deadline(_));
        let member = self.world.services[s].replicas[r].clone();
        let parked = member.hold(&job.message).await.map_err(|e| e.to_string())?;
        if parked == Parked::Head {
            let topic = retry_topic(self.name(s));
            let message = &job.message;
            let copy_offset = self.broker.produce(
                &topic,
                &message.key,
                message.headers.clone(),
                message.payload.clone(),
            );
            let mut original = message.clone();
            original.parked_seq = None;
            self.retries.insert(
                (topic, copy_offset),
                RetryCopy {
                    original,
                    attempts: job.attempts,
                    resolving,
                },
            );
            member
                .forget(&job.message)
                .await
                .map_err(|e| e.to_string())?;
            self.note(format!(
                "  {} {} to its retry tier ({error})",
                self.name(s),
                job.message.key
            ));
        } else {
            self.note(format!(
                "  {} {} waits behind its order's head",
                self.name(s),
                job.message.key
            ));
        }
        self.finish(s, r, &job);
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        s: usize,
        r: usize,
        job: Job,
        error: &str,
    ) -> Result<(), String> {
        let mut letter = job.message.clone();
        letter.parked_seq = None;
        self.dead_letters.push(letter);
        self.note(format!(
            "  {} dead-letters {} {} ({error})",
            self.name(s),
            job.message.event_type(),
            job.message.key
        ));
        let member = self.world.services[s].replicas[r].clone();
        let next = member
            .resolve_unhandled(&job.message)
            .await
            .map_err(|e| e.to_string())?;
        self.finish(s, r, &job);
        if let Some(next) = next {
            self.jobs[s][r].push_back(Job::stored(next, true));
        }
        Ok(())
    }
}
