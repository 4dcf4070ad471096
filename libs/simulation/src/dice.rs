//! The run's only source of chance, seeded: every choice the simulation
//! makes (what happens next, to whom, how the outside answers) comes from
//! here, and is written into the trace a failing seed prints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::outside::Answer;

pub struct Dice {
    rng: Mutex<StdRng>,
    trace: Mutex<Vec<String>>,
    /// Faults on (the storm) or off (the calm that lets the saga finish).
    stormy: AtomicBool,
    /// How often a call to the outside fails, per mille, in the storm.
    outside_failures: u32,
}

impl Dice {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let outside_failures = rng.random_range(0..400);
        Self {
            rng: Mutex::new(rng),
            trace: Mutex::new(Vec::new()),
            stormy: AtomicBool::new(true),
            outside_failures,
        }
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&self, per_mille: u32) -> bool {
        self.rng.lock().expect("dice").random_range(0..1000) < per_mille
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&self, n: usize) -> usize {
        self.rng.lock().expect("dice").random_range(0..n)
    }

    /// Picks by weight: the index of the chosen weight.
    pub fn weighted(&self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut roll = self.rng.lock().expect("dice").random_range(0..total.max(1));
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }

    pub fn is_stormy(&self) -> bool {
        self.stormy.load(Ordering::Relaxed)
    }

    /// No more faults from now on.
    pub fn calm(&self) {
        self.stormy.store(false, Ordering::Relaxed);
        self.note("-- calm: no more faults".to_string());
    }

    /// How the next call to the outside goes.
    pub fn outside(&self) -> Answer {
        if !self.is_stormy() || !self.chance(self.outside_failures) {
            return Answer::Acts;
        }
        if self.chance(500) {
            Answer::FailsBefore
        } else {
            Answer::LostAfter
        }
    }

    pub fn note(&self, line: String) {
        self.trace.lock().expect("trace").push(line);
    }

    pub fn trace(&self) -> Vec<String> {
        self.trace.lock().expect("trace").clone()
    }
}
