//! Lease deadlines, kept by whoever decides expiry (the Raft leader, or a single-node backend).
//!
//! The replicated state only knows each lease's TTL. Deadlines live here, in memory, on the
//! deciding node: a keep-alive moves a deadline, and an expired lease is revoked by proposing a
//! `LeaseRevoke` through the log, so replicas never consult their own clocks. A new leader
//! starts every deadline afresh (now + TTL), as etcd's lessor does on promotion: leases may live
//! a little longer across a leader change, never shorter.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use hanode_types::LeaseId;

/// Deadlines of live leases on the deciding node.
#[derive(Debug, Default)]
pub struct Lessor {
    deadlines: HashMap<LeaseId, (Instant, i64)>,
}

impl Lessor {
    /// An empty lessor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the tracked set equal the replicated one: new leases get a full TTL from `now`,
    /// vanished ones are dropped, known ones keep their deadline.
    pub fn sync(&mut self, leases: &[(LeaseId, i64)], now: Instant) {
        let live: HashMap<LeaseId, i64> = leases.iter().copied().collect();
        self.deadlines.retain(|id, _| live.contains_key(id));
        for (id, ttl) in live {
            self.deadlines
                .entry(id)
                .or_insert_with(|| (now + secs(ttl), ttl));
        }
    }

    /// Forgets every deadline (this node stopped deciding); the next `sync` restarts them.
    pub fn clear(&mut self) {
        self.deadlines.clear();
    }

    /// Renews one lease the replicated state holds with granted `ttl`, tracking it first (with
    /// a full TTL from `now`) if [`Lessor::sync`] has not seen it yet; `None` if it is tracked
    /// and already past its deadline. Costs one lookup, where `sync` walks every lease.
    pub fn renew(&mut self, id: LeaseId, ttl: i64, now: Instant) -> Option<i64> {
        self.deadlines
            .entry(id)
            .or_insert_with(|| (now + secs(ttl), ttl));
        self.keep_alive(id, now)
    }

    /// Stops tracking a lease the replicated state no longer holds.
    pub fn forget(&mut self, id: LeaseId) {
        self.deadlines.remove(&id);
    }

    /// Renews a lease for a full TTL; `None` if it is not tracked.
    pub fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Option<i64> {
        let (deadline, ttl) = self.deadlines.get_mut(&id)?;
        if *deadline <= now {
            // Expired but not yet revoked: too late to renew, as in etcd.
            return None;
        }
        *deadline = now + secs(*ttl);
        Some(*ttl)
    }

    /// Whole seconds left, rounded up; `None` if not tracked or already expired.
    pub fn remaining_secs(&self, id: LeaseId, now: Instant) -> Option<i64> {
        let (deadline, _) = self.deadlines.get(&id)?;
        let left = deadline.checked_duration_since(now)?;
        if left.is_zero() {
            return None;
        }
        Some(left.as_millis().div_ceil(1000) as i64)
    }

    /// Leases whose deadline has passed, oldest first.
    pub fn expired(&self, now: Instant) -> Vec<LeaseId> {
        let mut out: Vec<(Instant, LeaseId)> = self
            .deadlines
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(id, (deadline, _))| (*deadline, *id))
            .collect();
        out.sort_unstable();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// The earliest deadline, to sleep until.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().map(|(deadline, _)| *deadline).min()
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keep_alive_extends_and_expiry_is_reported() {
        let mut lessor = Lessor::new();
        let start = Instant::now();
        lessor.sync(&[(1, 5), (2, 10)], start);
        assert_eq!(lessor.remaining_secs(1, start), Some(5));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(lessor.keep_alive(1, Instant::now()), Some(5));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(lessor.expired(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(lessor.expired(Instant::now()), vec![1, 2]);
        assert_eq!(lessor.keep_alive(1, Instant::now()), None);
        lessor.sync(&[(2, 10)], Instant::now());
        assert_eq!(lessor.expired(Instant::now()), vec![2]);
        assert_eq!(lessor.remaining_secs(7, Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn renew_tracks_new_leases_and_refuses_expired_ones() {
        let mut lessor = Lessor::new();
        let start = Instant::now();
        // Granted after the last sync: tracked on its first renewal, with a full TTL.
        assert_eq!(lessor.renew(3, 5, start), Some(5));
        assert_eq!(lessor.remaining_secs(3, start), Some(5));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(lessor.expired(Instant::now()), vec![3]);
        // Past its deadline, a renewal does not bring it back.
        assert_eq!(lessor.renew(3, 5, Instant::now()), None);
        lessor.forget(3);
        assert!(lessor.expired(Instant::now()).is_empty());
    }
}
