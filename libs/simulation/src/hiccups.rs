//! Passing trouble inside a service: a handler that fails transiently now
//! and then (a database hiccup, a lock timeout), so that events wait in
//! retry tiers, orders are parked and the events behind them stored — the
//! paths where an order can be stranded. Decided by the run's dice.

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_envelope::{Event, EventType};
use orderflow_runtime::sqlx::AnyConnection;
use orderflow_runtime::{Handler, HandlerCtx, HandlerError};

use crate::dice::Dice;

/// How often a handler hiccups in the storm, per mille.
const HICCUPS: u32 = 60;

pub struct Hiccups {
    pub inner: Arc<dyn Handler>,
    pub dice: Arc<Dice>,
}

#[async_trait]
impl Handler for Hiccups {
    fn handles(&self, event_type: EventType) -> bool {
        self.inner.handles(event_type)
    }

    async fn handle(&self, event: Event, ctx: &mut HandlerCtx<'_>) -> Result<(), HandlerError> {
        if self.dice.is_stormy() && self.dice.chance(HICCUPS) {
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
        conn: &mut AnyConnection,
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
