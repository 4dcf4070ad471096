//! The offset a partition may commit: the contiguous low watermark of finished
//! work. Messages of one partition finish out of order (different keys run
//! concurrently), so the committed offset is the lowest offset still
//! unfinished, or one past the highest finished when nothing is. Only offsets
//! actually received are tracked, so gaps in a partition's offsets
//! (compaction, transaction markers) never hold the watermark back. The same
//! model as Confluent's Parallel Consumer; without its commit metadata, so a
//! restart redelivers what finished above the watermark (the inbox absorbs it).

use std::collections::BTreeSet;

#[derive(Debug, Default, Clone)]
pub struct OffsetTracker {
    /// Received and not finished.
    unfinished: BTreeSet<i64>,
    /// The highest offset received so far.
    highest: Option<i64>,
}

impl OffsetTracker {
    /// A message at `offset` was received and is not finished yet.
    pub fn received(&mut self, offset: i64) {
        self.unfinished.insert(offset);
        self.highest = Some(self.highest.map_or(offset, |h| h.max(offset)));
    }

    /// The message at `offset` is finished (handled, skipped or dead-lettered).
    pub fn finished(&mut self, offset: i64) {
        self.unfinished.remove(&offset);
    }

    /// The offset to commit: every message below it is finished. `None` while
    /// nothing was received.
    pub fn watermark(&self) -> Option<i64> {
        match self.unfinished.first() {
            Some(&lowest) => Some(lowest),
            None => self.highest.map(|h| h + 1),
        }
    }

    /// Offsets above the watermark that are finished, as alternating run
    /// lengths `[unfinished, finished, unfinished, finished, …]` starting at the
    /// watermark: what a commit's metadata carries so that a new owner of the
    /// partition does not redo them. Empty when nothing is unfinished.
    pub fn finished_runs(&self) -> Vec<u64> {
        let mut runs = Vec::new();
        let mut blocks = self.unfinished.iter().copied().peekable();
        let mut previous_end: Option<i64> = None;
        while let Some(start) = blocks.next() {
            let mut end = start;
            while blocks.peek() == Some(&(end + 1)) {
                end = blocks.next().expect("peeked");
            }
            if let Some(previous) = previous_end {
                runs.push((start - previous - 1) as u64);
            }
            runs.push((end - start + 1) as u64);
            previous_end = Some(end);
        }
        if let (Some(end), Some(highest)) = (previous_end, self.highest) {
            if highest > end {
                runs.push((highest - end) as u64);
            }
        }
        runs
    }
}

/// The most offsets a commit's metadata may span above its watermark: far
/// more than a partition's prefetch and in-flight window ever leave
/// unfinished, and small enough that corrupt metadata cannot make a consumer
/// allocate without bound.
pub const MAX_METADATA_SPAN: u64 = 1 << 20;

/// The offsets at or above `watermark` that `runs` (from
/// [`OffsetTracker::finished_runs`]) marks finished. Runs that together span
/// more than [`MAX_METADATA_SPAN`] offsets, or overflow, were not written by
/// this consumer: nothing is taken from them (every offset above the
/// watermark is read again, which the inbox makes safe). Clamping a run
/// instead would shift every run after it and mark unfinished offsets done.
pub fn finished_from_runs(watermark: i64, runs: &[u64]) -> BTreeSet<i64> {
    let span = runs
        .iter()
        .try_fold(0u64, |total, &run| total.checked_add(run));
    let fits = span.is_some_and(|span| {
        span <= MAX_METADATA_SPAN
            && i64::try_from(span).is_ok_and(|s| watermark.checked_add(s).is_some())
    });
    let mut finished = BTreeSet::new();
    if !fits {
        return finished;
    }
    let mut at = watermark;
    for (i, &len) in runs.iter().enumerate() {
        let len = len as i64; // bounded by MAX_METADATA_SPAN above
        if i % 2 == 1 {
            finished.extend(at..at + len);
        }
        at += len;
    }
    finished
}

/// Commit metadata: a version prefix, then the runs as LEB128 varints in
/// base64 (metadata must be UTF-8). Runs that do not fit in `limit` bytes are
/// dropped from the end: those offsets are redelivered, which is safe.
pub fn encode_metadata(runs: &[u64], limit: usize) -> String {
    use base64::Engine as _;
    let mut bytes = Vec::new();
    let mut kept = 0;
    for (i, &run) in runs.iter().enumerate() {
        let mut v = run;
        let mut buf = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf.push(b);
                break;
            }
            buf.push(b | 0x80);
        }
        if METADATA_PREFIX.len() + (bytes.len() + buf.len()).div_ceil(3) * 4 > limit {
            break;
        }
        bytes.extend(buf);
        if i % 2 == 1 {
            kept = bytes.len();
        }
    }
    bytes.truncate(kept);
    if bytes.is_empty() {
        return String::new();
    }
    format!(
        "{METADATA_PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    )
}

/// The runs of [`encode_metadata`]; none for metadata written by anything else.
pub fn decode_metadata(metadata: &str) -> Vec<u64> {
    use base64::Engine as _;
    let Some(encoded) = metadata.strip_prefix(METADATA_PREFIX) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded) else {
        return Vec::new();
    };
    let mut runs = Vec::new();
    let (mut v, mut shift) = (0u64, 0);
    for b in bytes {
        if shift >= 64 {
            return Vec::new();
        }
        v |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            runs.push(v);
            (v, shift) = (0, 0);
        }
    }
    runs
}

const METADATA_PREFIX: &str = "orderflow-done-v1:";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_watermark_stops_at_the_lowest_unfinished_offset() {
        let mut t = OffsetTracker::default();
        assert_eq!(t.watermark(), None);
        for o in 10..15 {
            t.received(o);
        }
        assert_eq!(t.watermark(), Some(10));
        t.finished(11);
        t.finished(12);
        assert_eq!(t.watermark(), Some(10), "10 is still running");
        t.finished(10);
        assert_eq!(t.watermark(), Some(13));
        t.finished(14);
        t.finished(13);
        assert_eq!(t.watermark(), Some(15), "all done: one past the highest");
    }

    #[test]
    fn gaps_in_offsets_do_not_hold_it_back() {
        let mut t = OffsetTracker::default();
        t.received(3);
        t.received(7); // 4..6 were compacted away
        t.finished(3);
        assert_eq!(t.watermark(), Some(7));
        t.finished(7);
        assert_eq!(t.watermark(), Some(8));
    }

    #[test]
    fn finished_offsets_above_the_watermark_survive_a_commit() {
        let mut t = OffsetTracker::default();
        for o in 100..120 {
            t.received(o);
        }
        for o in [101, 102, 105, 106, 107, 119] {
            t.finished(o);
        }
        assert_eq!(t.watermark(), Some(100));
        let runs = t.finished_runs();
        assert_eq!(runs, vec![1, 2, 2, 3, 11, 1]);
        let metadata = encode_metadata(&runs, 4096);
        let decoded = decode_metadata(&metadata);
        assert_eq!(decoded, runs);
        let done = finished_from_runs(100, &decoded);
        assert_eq!(
            done.into_iter().collect::<Vec<_>>(),
            vec![101, 102, 105, 106, 107, 119]
        );
        assert!(decode_metadata("something else wrote this").is_empty());
        assert_eq!(encode_metadata(&[], 4096), "");
    }

    #[test]
    fn nothing_finished_above_the_last_unfinished_offset_adds_no_run() {
        let mut t = OffsetTracker::default();
        for o in 0..=5 {
            t.received(o);
        }
        for o in [0, 1, 3] {
            t.finished(o);
        }
        assert_eq!(t.watermark(), Some(2));
        // 2 unfinished, 3 finished, 4 and 5 unfinished; 5 is the highest.
        assert_eq!(t.finished_runs(), vec![1, 1, 2]);
    }

    #[test]
    fn metadata_fills_its_limit_exactly() {
        let runs = [1, 2, 1, 3];
        let all = encode_metadata(&runs, 4096);
        // Four one-byte varints: eight characters of base64 at most.
        let fits = METADATA_PREFIX.len() + 8;
        assert_eq!(encode_metadata(&runs, fits), all);
        assert_eq!(decode_metadata(&encode_metadata(&runs, fits)), runs);
        // One character short: the last pair goes, never half a pair.
        assert_eq!(
            decode_metadata(&encode_metadata(&runs, fits - 1)),
            vec![1, 2]
        );
        assert_eq!(encode_metadata(&runs, METADATA_PREFIX.len() + 3), "");
        // Runs of 128 and more take two bytes each.
        let long = [300, 128];
        assert_eq!(decode_metadata(&encode_metadata(&long, 4096)), long);
    }

    #[test]
    fn metadata_that_does_not_fit_drops_the_tail() {
        let runs: Vec<u64> = (0..4000).map(|i| 1 + i % 3).collect();
        let metadata = encode_metadata(&runs, 256);
        assert!(metadata.len() <= 256, "{}", metadata.len());
        let decoded = decode_metadata(&metadata);
        assert!(!decoded.is_empty() && decoded.len().is_multiple_of(2));
        assert_eq!(decoded[..], runs[..decoded.len()]);
    }

    #[test]
    fn metadata_spanning_too_much_is_rejected_not_clamped() {
        // Clamping the 1,500,000-offset run to 2^20 would shift the runs after
        // it and mark offset 1,500,001 finished, which it is not.
        let runs = [1, 1_500_000, 1, 1_500_000, 1, 1];
        assert!(finished_from_runs(0, &runs).is_empty());
        assert!(finished_from_runs(0, &[0, u64::MAX, 1, 1]).is_empty());
        assert!(finished_from_runs(i64::MAX - 1, &[1, 2]).is_empty());
        // At the limit it is still read.
        let at_limit = [1, MAX_METADATA_SPAN - 1];
        assert_eq!(
            finished_from_runs(10, &at_limit).len() as u64,
            MAX_METADATA_SPAN - 1
        );
        assert!(finished_from_runs(10, &[1, MAX_METADATA_SPAN]).is_empty());
    }

    proptest! {
        /// Whatever order messages finish in, the watermark never passes an
        /// unfinished offset, never moves backwards, and ends one past the last.
        #[test]
        fn never_passes_unfinished_work(mut order in Just((0..200i64).collect::<Vec<_>>()).prop_shuffle(), gaps in proptest::collection::btree_set(0..200i64, 0..40)) {
            let offsets: Vec<i64> = (0..200).filter(|o| !gaps.contains(o)).collect();
            order.retain(|o| !gaps.contains(o));
            let mut t = OffsetTracker::default();
            for &o in &offsets { t.received(o); }
            let mut done = BTreeSet::new();
            let mut last = i64::MIN;
            for o in order {
                t.finished(o);
                done.insert(o);
                let w = t.watermark().unwrap();
                prop_assert!(w >= last, "moved backwards");
                last = w;
                for &below in offsets.iter().filter(|&&b| b < w) {
                    prop_assert!(done.contains(&below), "watermark {} passes unfinished {}", w, below);
                }
            }
            if let Some(&max) = offsets.last() {
                prop_assert!(t.finished_runs().is_empty());
                prop_assert_eq!(t.watermark(), Some(max + 1));
            }
        }

        /// What the metadata says is finished is exactly what is finished above the watermark.
        #[test]
        fn runs_name_exactly_the_finished_offsets(done in proptest::collection::btree_set(0..300i64, 0..300)) {
            let mut t = OffsetTracker::default();
            for o in 0..300 { t.received(o); }
            for &o in &done { t.finished(o); }
            let w = t.watermark().unwrap();
            let runs = decode_metadata(&encode_metadata(&t.finished_runs(), 100_000));
            let expected: BTreeSet<i64> = done.iter().copied().filter(|&o| o >= w).collect();
            prop_assert_eq!(finished_from_runs(w, &runs), expected);
        }
    }
}
