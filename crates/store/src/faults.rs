//! Fault injection on the peer network, for tests: drop or delay traffic between members.
//!
//! Every outgoing peer RPC (Raft and forwarded client requests) asks [`Faults::check`] first.
//! Members of one in-process test cluster share one `Faults`, so a test can isolate a member,
//! split the cluster, add latency, and heal it again.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

use hanode_types::NodeId;

/// Injected network faults between members, by direction.
#[derive(Debug, Default)]
pub struct Faults {
    blocked: RwLock<HashSet<(NodeId, NodeId)>>,
    paused: RwLock<HashSet<NodeId>>,
    delays: RwLock<HashMap<(NodeId, NodeId), Duration>>,
}

/// What an RPC from one member to another must suffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver (after the delay, if any).
    Deliver(Option<Duration>),
    /// Drop: the target is unreachable.
    Drop,
    /// The target is paused (SIGSTOP-like): the call hangs until resumed or timed out.
    Hang,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// What an RPC from `from` to `to` must suffer now.
    pub fn check(&self, from: NodeId, to: NodeId) -> Verdict {
        let paused = self.paused.read().unwrap_or_else(|p| p.into_inner());
        if paused.contains(&to) || paused.contains(&from) {
            return Verdict::Hang;
        }
        drop(paused);
        if self
            .blocked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(from, to))
        {
            return Verdict::Drop;
        }
        Verdict::Deliver(
            self.delays
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(from, to))
                .copied(),
        )
    }

    /// Drops traffic in one direction.
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.blocked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((from, to));
    }

    /// Cuts `node` off from every member of `all` in both directions.
    pub fn isolate(&self, node: NodeId, all: &[NodeId]) {
        for other in all.iter().copied().filter(|other| *other != node) {
            self.block(node, other);
            self.block(other, node);
        }
    }

    /// Splits members into groups that only reach members of their own group.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for from in a.iter() {
                        for to in b.iter() {
                            self.block(*from, *to);
                        }
                    }
                }
            }
        }
    }

    /// Delays traffic from `from` to `to`.
    pub fn delay(&self, from: NodeId, to: NodeId, delay: Duration) {
        self.delays
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((from, to), delay);
    }

    /// Pauses a member as SIGSTOP would: connections stay open, nothing is answered.
    pub fn pause(&self, node: NodeId) {
        self.paused
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node);
    }

    /// Whether calls between `from` and `to` are still paused.
    pub fn is_paused(&self, from: NodeId, to: NodeId) -> bool {
        let paused = self.paused.read().unwrap_or_else(|p| p.into_inner());
        paused.contains(&from) || paused.contains(&to)
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.paused
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.blocked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.delays
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_blocks_across_groups_only() {
        let faults = Faults::new();
        faults.partition(&[&[1], &[2, 3]]);
        assert_eq!(faults.check(1, 2), Verdict::Drop);
        assert_eq!(faults.check(3, 1), Verdict::Drop);
        assert_eq!(faults.check(2, 3), Verdict::Deliver(None));
        faults.heal();
        assert_eq!(faults.check(1, 2), Verdict::Deliver(None));
    }
}
