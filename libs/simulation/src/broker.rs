//! Kafka, simulated: topics of two partitions (a message's partition from
//! its key), one cursor per consumer group, partitions owned by one replica
//! of the group at a time. A message delivered and not finished is in
//! flight with its replica; a crash or a rebalance hands it back, to be
//! delivered again (to the partition's owner then). A group whose committed
//! offsets expired reads its topics from the start again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use orderflow_runtime::simulation::Message;

pub const PARTITIONS: i32 = 2;

/// Where a message sits: its topic and offset (one offset space per topic:
/// its partition is in the message).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset {
    pub topic: String,
    pub offset: i64,
}

impl Offset {
    /// The message at this place of `logs`.
    fn in_log<'l>(&self, logs: &'l BTreeMap<String, Vec<Message>>) -> &'l Message {
        &logs[&self.topic][self.offset as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight(usize),
    Finished,
}

/// One consumer group: what it has read and who owns what.
struct Group {
    topics: Vec<String>,
    replicas: usize,
    /// Rebalances so far: partition ownership turns with it.
    epoch: usize,
    states: BTreeMap<Offset, State>,
}

#[derive(Default)]
pub struct Broker {
    logs: BTreeMap<String, Vec<Message>>,
    groups: BTreeMap<String, Group>,
}

pub fn partition_of(key: &str) -> i32 {
    let hash = key
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (hash % PARTITIONS as u32) as i32
}

impl Broker {
    /// A group reading `topics` with `replicas` members.
    pub fn join(&mut self, group: &str, topics: &[&str], replicas: usize) {
        self.groups.insert(
            group.to_string(),
            Group {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                replicas,
                epoch: 0,
                states: BTreeMap::new(),
            },
        );
    }

    /// Appends a message (its topic, partition and offset set here);
    /// returns its offset.
    pub fn produce(
        &mut self,
        topic: &str,
        key: &str,
        headers: Vec<(String, Vec<u8>)>,
        payload: Vec<u8>,
    ) -> i64 {
        let log = self.logs.entry(topic.to_string()).or_default();
        let offset = log.len() as i64;
        let message = Message {
            key: key.to_string(),
            headers,
            payload,
            topic: topic.to_string(),
            partition: partition_of(key),
            offset,
            parked_seq: None,
        };
        log.push(message);
        for group in self.groups.values_mut() {
            if group.topics.iter().any(|t| t == topic) {
                let at = Offset {
                    topic: topic.to_string(),
                    offset,
                };
                group.states.insert(at, State::Fresh);
            }
        }
        offset
    }

    /// Who owns a partition: a hash of topic, partition and the group's
    /// last rebalance, so one order's partitions of two topics may be
    /// owned by one replica or by two.
    fn owner(group: &Group, topic: &str, partition: i32) -> usize {
        let hash = topic
            .bytes()
            .chain(partition.to_le_bytes())
            .chain(group.epoch.to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        // The high bits: an FNV hash's lowest bit is only the parity of its bytes.
        ((hash >> 32) % group.replicas.max(1) as u64) as usize
    }

    /// Up to `max` messages for `replica` of `group`: in offset order per
    /// partition it owns, one partition after another starting at the
    /// `turn`-th (as a consumer fetches from all it owns); skipping keys in
    /// `busy` (and every later message of a skipped key: one message per
    /// key at a time) and messages not `due` yet (a retry copy whose tier's
    /// delay has not passed). The first message of a key in `first` goes
    /// ahead of the others (a fetch that happens to bring it just then).
    pub fn deliver(
        &mut self,
        group: &str,
        replica: usize,
        (busy, first): (&BTreeSet<String>, &BTreeSet<String>),
        (max, turn): (usize, usize),
        mut due: impl FnMut(&Message) -> bool,
    ) -> Vec<Message> {
        let Some(g) = self.groups.get_mut(group) else {
            return Vec::new();
        };
        let mut blocked = busy.clone();
        for (at, state) in &g.states {
            if let State::InFlight(_) = state {
                blocked.insert(at.in_log(&self.logs).key.clone());
            }
        }
        let mut streams: BTreeMap<(String, i32), VecDeque<Offset>> = BTreeMap::new();
        for (at, state) in &g.states {
            let partition = at.in_log(&self.logs).partition;
            if *state == State::Fresh && Self::owner(g, &at.topic, partition) == replica {
                streams
                    .entry((at.topic.clone(), partition))
                    .or_default()
                    .push_back(at.clone());
            }
        }
        let mut streams: Vec<VecDeque<Offset>> = streams.into_values().collect();
        let mut taken = Vec::new();
        for stream in &mut streams {
            let Some(i) = stream
                .iter()
                .position(|at| first.contains(&at.in_log(&self.logs).key))
            else {
                continue;
            };
            // Nothing of its key is before it: it is its key's first.
            let message = stream[i].in_log(&self.logs);
            if taken.len() < max && due(message) && blocked.insert(message.key.clone()) {
                let at = stream.remove(i).expect("found");
                g.states.insert(at, State::InFlight(replica));
                taken.push(message.clone());
            }
        }
        let (count, mut next) = (streams.len(), turn);
        while taken.len() < max && streams.iter().any(|s| !s.is_empty()) {
            let stream = &mut streams[next % count];
            next += 1;
            let Some(at) = stream.pop_front() else {
                continue;
            };
            let message = at.in_log(&self.logs);
            if !due(message) {
                continue;
            }
            if blocked.insert(message.key.clone()) {
                g.states.insert(at, State::InFlight(replica));
                taken.push(message.clone());
            }
        }
        taken
    }

    /// The message's offset is done for the group (ignored when it is no
    /// longer in flight with this replica: its partition moved meanwhile).
    pub fn finish(&mut self, group: &str, replica: usize, message: &Message) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let at = Offset {
            topic: message.topic.clone(),
            offset: message.offset,
        };
        if g.states.get(&at) == Some(&State::InFlight(replica)) {
            g.states.insert(at, State::Finished);
        }
    }

    /// `replica` died: what it had in flight is delivered again.
    pub fn crash(&mut self, group: &str, replica: usize) {
        if let Some(g) = self.groups.get_mut(group) {
            for state in g.states.values_mut() {
                if *state == State::InFlight(replica) {
                    *state = State::Fresh;
                }
            }
        }
    }

    /// Partitions move: everything in flight is delivered again, to the
    /// new owners (the old ones may still finish what they started).
    pub fn rebalance(&mut self, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.epoch += 1;
            for state in g.states.values_mut() {
                if matches!(state, State::InFlight(_)) {
                    *state = State::Fresh;
                }
            }
        }
    }

    /// The group's committed offsets expired: it reads its topics from the
    /// start (what is in flight stays in flight).
    pub fn rewind(&mut self, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            for state in g.states.values_mut() {
                if *state == State::Finished {
                    *state = State::Fresh;
                }
            }
        }
    }

    /// An old message of `topic` (the `pick`-th), to replay.
    pub fn old(&self, topic: &str, pick: usize) -> Option<Message> {
        let log = self.logs.get(topic)?;
        (!log.is_empty()).then(|| log[pick % log.len()].clone())
    }

    /// Messages not finished by some group.
    pub fn backlog(&self) -> usize {
        self.groups
            .values()
            .map(|g| g.states.values().filter(|s| **s != State::Finished).count())
            .sum()
    }
}
