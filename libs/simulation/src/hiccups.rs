//! Passing trouble inside a service: a handler that fails transiently now
//! and then (a database hiccup, a lock timeout), so that events wait in
//! retry tiers, orders are parked and the events behind them stored — the
//! paths where an order can be stranded. A hiccup may last: the same
//! event then fails its next attempt or two too (the batch's one-at-a-time
//! fallback, its retry copy). Decided by the run's dice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use orderflow_envelope::{Event, EventType};
use orderflow_runtime::sql::Connection;
use orderflow_runtime::{Handler, HandlerCtx, HandlerError};

use crate::dice::Dice;

/// How often a handler hiccups in the storm, per mille.
const HICCUPS: u32 = 150;

pub struct Hiccups {
    inner: Arc<dyn Handler>,
    dice: Arc<Dice>,
    /// Events whose hiccup lasts: how many more attempts of each fail.
    lasting: Mutex<HashMap<String, usize>>,
}

impl Hiccups {
    pub fn new(inner: Arc<dyn Handler>, dice: Arc<Dice>) -> Self {
        Self {
            inner,
            dice,
            lasting: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this attempt of the event fails.
    fn hiccups(&self, event_id: &str) -> bool {
        if !self.dice.is_stormy() {
            return false;
        }
        let mut lasting = self.lasting.lock().expect("hiccups");
        if let Some(left) = lasting.get_mut(event_id).filter(|left| **left > 0) {
            *left -= 1;
            return true;
        }
        if self.dice.chance(HICCUPS) {
            lasting.insert(event_id.to_string(), self.dice.below(3));
            return true;
        }
        false
    }
}

#[async_trait]
impl Handler for Hiccups {
    fn handles(&self, event_type: EventType) -> bool {
        self.inner.handles(event_type)
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        if self.hiccups(&ctx.meta.id) {
            self.dice.note(format!(
                "  hiccup: {} of {} fails transiently",
                event.event_type().name(),
                event.order_id()
            ));
            return Err(HandlerError::Transient(
                "simulated: a database hiccup".into(),
            ));
        }
        self.inner.handle(event, ctx).await
    }

    async fn lock_rows(
        &self,
        events: &[&Event],
        conn: &mut Connection,
    ) -> Result<(), HandlerError> {
        self.inner.lock_rows(events, conn).await
    }

    async fn deadline_passed(
        &self,
        event: Event,
        error: &str,
        ctx: &mut HandlerCtx<'_>,
    ) -> Result<bool, HandlerError> {
        self.inner.deadline_passed(event, error, ctx).await
    }
}
