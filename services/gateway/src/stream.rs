//! Which status changes a stream has yet to send. The order service records
//! each change with the time it was made, in the transaction that makes it;
//! transactions commit in any order, so a change stamped earlier can become
//! visible after a later one was sent. A stream therefore reads again from
//! [`GRACE`] before the newest change it sent, and sends what it has not
//! sent yet (it remembers the changes of that window). A resumed stream
//! (`Last-Event-ID`) has no such memory: it repeats the window's changes it
//! may have sent, so a client drops event ids it has already seen; so does a
//! new stream, which starts [`GRACE_MS`] back. A read that comes back full
//! (a burst) is followed by the next page, after its last change, before
//! the window moves on. A change that becomes visible more than
//! [`GRACE_MS`] after its stamp is not streamed (it is in the lists).

#![deny(clippy::unwrap_used, clippy::arithmetic_side_effects)]

use std::collections::BTreeSet;

/// How late a change may become visible and still be sent.
pub const GRACE_MS: i64 = 3_000;

/// One change: when it was made, the order, the status it took. Its text
/// form (`<ms>.<status>.<order id>`) is the SSE event id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId {
    pub at: i64,
    pub status: String,
    pub order_id: String,
}

impl std::fmt::Display for ChangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.at, self.status, self.order_id)
    }
}

impl std::str::FromStr for ChangeId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("Last-Event-ID {s:?} is not an event id this stream sent");
        let mut parts = s.splitn(3, '.');
        let (Some(at), Some(status), Some(order_id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let status_ok = (1..=32).contains(&status.len())
            && status.bytes().all(|c| c.is_ascii_uppercase() || c == b'_');
        if !status_ok || orderflow_api::IdKind::Order.error(order_id).is_some() {
            return Err(bad());
        }
        Ok(Self {
            at: at.parse().map_err(|_| bad())?,
            status: status.to_string(),
            order_id: order_id.to_string(),
        })
    }
}

/// What a stream has sent, and where its next read starts.
#[derive(Debug)]
pub struct Window {
    /// The next read asks for changes made at or after this time (ms)…
    pub since: i64,
    /// …and, while paging through a burst, after this change.
    pub after: Option<ChangeId>,
    sent: BTreeSet<ChangeId>,
}

impl Window {
    /// A new stream sends changes from [`GRACE_MS`] before `now` on (one
    /// stamped just before it opened may become visible just after); a
    /// resumed one from [`GRACE_MS`] before the last change it had.
    pub fn start(resume_after: Option<&ChangeId>, now: i64) -> Self {
        // A client's Last-Event-ID may name any time: i64::MIN less the
        // grace must not wrap round to the far future.
        let since = match resume_after {
            Some(last) => last.at,
            None => now,
        }
        .saturating_sub(GRACE_MS);
        let sent = resume_after.cloned().into_iter().collect();
        Self {
            since,
            after: None,
            sent,
        }
    }

    /// The changes of one read (in the order of their ids), each with what
    /// it carries, that are still to send. A read that came back `full` (as
    /// many as asked) has more behind it: the next read is the page after
    /// its last change.
    pub fn take<T>(&mut self, read: Vec<(ChangeId, T)>, full: bool) -> Vec<(ChangeId, T)> {
        let newest = read.iter().map(|(c, _)| c.at).max();
        self.after = if full {
            read.iter().map(|(c, _)| c).max().cloned()
        } else {
            None
        };
        let fresh: Vec<(ChangeId, T)> = read
            .into_iter()
            .filter(|(c, _)| self.sent.insert(c.clone()))
            .collect();
        if let (Some(newest), false) = (newest, full) {
            self.since = self.since.max(newest.saturating_sub(GRACE_MS));
        }
        // Changes older than the window cannot come back in a read.
        let since = self.since;
        self.sent.retain(|c| c.at >= since);
        fresh
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    use super::*;

    fn change(at: i64, order: &str) -> ChangeId {
        ChangeId {
            at,
            status: "SHIPPED".into(),
            order_id: order.into(),
        }
    }

    /// Takes changes that carry nothing, and returns the ids sent.
    fn take(w: &mut Window, read: Vec<ChangeId>, full: bool) -> Vec<ChangeId> {
        let read = read.into_iter().map(|c| (c, ())).collect();
        w.take(read, full).into_iter().map(|(c, ())| c).collect()
    }

    #[test]
    fn an_event_id_reads_back_as_the_change_it_names() {
        let id = ChangeId {
            at: 1_700_000_000_123,
            status: "REFUND_PENDING".into(),
            order_id: "0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b".into(),
        };
        assert_eq!(id.to_string().parse::<ChangeId>(), Ok(id));
        for bad in [
            "",
            "12",
            "x.SHIPPED.0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b",
            "12.SHIPPED",
            "12.SHIPPED.o-1",
            "12.shipped.0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b",
            "12..0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b",
        ] {
            assert!(bad.parse::<ChangeId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_resume_from_the_first_millisecond_of_time_does_not_overflow() {
        let id: ChangeId = "-9223372036854775808.SHIPPED.0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b"
            .parse()
            .unwrap();
        let w = Window::start(Some(&id), 0);
        assert_eq!(w.since, i64::MIN, "the window starts as early as time goes");
        let mut w = Window::start(None, i64::MIN + 1);
        assert_eq!(w.since, i64::MIN);
        take(&mut w, vec![change(i64::MIN, "a")], false);
        assert_eq!(w.since, i64::MIN);
    }

    proptest::proptest! {
        /// Whatever a client sends as Last-Event-ID, the stream starts or
        /// refuses it, and never panics.
        #[test]
        fn any_last_event_id_starts_a_window_or_is_refused(
            s in ".{0,60}",
            at in proptest::num::i64::ANY,
            now in proptest::num::i64::ANY,
        ) {
            if let Ok(id) = s.parse::<ChangeId>() {
                Window::start(Some(&id), now);
            }
            let id = format!("{at}.SHIPPED.0190b7a2-6f3c-7d4e-9a1b-2c3d4e5f6a7b");
            let id: ChangeId = id.parse().unwrap();
            let mut w = Window::start(Some(&id), now);
            take(&mut w, vec![change(at, "a")], false);
        }
    }

    #[test]
    fn each_change_is_sent_once_even_when_read_again() {
        let mut w = Window::start(None, 1_000 + GRACE_MS);
        assert_eq!(w.since, 1_000, "a new stream starts a grace back");
        let first = take(&mut w, vec![change(1_000, "a"), change(5_000, "b")], false);
        assert_eq!(first.len(), 2);
        assert_eq!(
            w.since, 2_000,
            "reads again from the grace before the newest"
        );
        // The next read sees b again, and c.
        let second = take(&mut w, vec![change(5_000, "b"), change(5_100, "c")], false);
        assert_eq!(second, vec![change(5_100, "c")]);
    }

    #[test]
    fn a_change_that_becomes_visible_late_is_still_sent() {
        let mut w = Window::start(None, 0);
        take(&mut w, vec![change(10_000, "later")], false);
        // Stamped before the one sent, committed after it.
        let late = take(
            &mut w,
            vec![change(9_000, "earlier"), change(10_000, "later")],
            false,
        );
        assert_eq!(late, vec![change(9_000, "earlier")]);
    }

    #[test]
    fn a_burst_is_read_page_by_page_and_then_the_window_moves_on() {
        let mut w = Window::start(None, 0);
        // More changes in one millisecond than a read returns.
        let page: Vec<_> = (0..5).map(|i| change(100, &format!("o{i}"))).collect();
        assert_eq!(take(&mut w, page.clone(), true).len(), 5);
        assert_eq!(
            w.after,
            Some(change(100, "o4")),
            "the next page starts after it"
        );
        assert_eq!(
            w.since, -GRACE_MS,
            "the window keeps its grace while paging"
        );
        let rest = vec![change(100, "o5"), change(20_000, "o6")];
        assert_eq!(take(&mut w, rest, false).len(), 2);
        assert_eq!((w.after.clone(), w.since), (None, 20_000 - GRACE_MS));
    }

    #[test]
    fn a_resumed_stream_repeats_the_window_but_not_the_last_event() {
        let last = change(10_000, "b");
        let mut w = Window::start(Some(&last), 99_999);
        assert_eq!(w.since, 10_000 - GRACE_MS);
        let read = vec![change(9_000, "a"), last.clone(), change(10_500, "c")];
        assert_eq!(
            take(&mut w, read, false),
            vec![change(9_000, "a"), change(10_500, "c")]
        );
    }

    #[test]
    fn the_memory_is_bounded_by_the_window() {
        let mut w = Window::start(None, 0);
        for i in 1..1_000 {
            take(&mut w, vec![change(i * 1_000, &format!("o{i}"))], false);
        }
        assert!(w.sent.len() <= 4, "{} remembered", w.sent.len());
    }
}
