//! Points where a test build can make the process fail, to prove what
//! survives a crash there: with the `fault-injection` feature (enabled only
//! by the test kit's tests) a test sets a hook that runs at each point; in
//! every other build the points are empty and compile to nothing.

/// Where in the life of a batch of consumed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// The batch's effects, inbox and outbox rows are written; COMMIT is next.
    BeforeCommit,
    /// COMMIT returned; the events are not yet finished, so their offsets
    /// cannot have been committed.
    AfterCommit,
}

#[cfg(feature = "fault-injection")]
type Hook = Box<dyn Fn(FaultPoint, &[&str]) + Send + Sync>;

#[cfg(feature = "fault-injection")]
static HOOK: std::sync::OnceLock<Hook> = std::sync::OnceLock::new();

/// Sets the process's hook, once: it is called at every point with the
/// keys (order ids) of the batch's events.
#[cfg(feature = "fault-injection")]
pub fn set_hook(hook: impl Fn(FaultPoint, &[&str]) + Send + Sync + 'static) {
    if HOOK.set(Box::new(hook)).is_err() {
        panic!("the fault hook is set once per process");
    }
}

/// A batch reached `point`.
#[inline]
pub(crate) fn reached<'a>(point: FaultPoint, keys: impl FnOnce() -> Vec<&'a str>) {
    #[cfg(feature = "fault-injection")]
    if let Some(hook) = HOOK.get() {
        hook(point, &keys());
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = (point, keys);
}
