//! The cluster's run counts, for a replica: the QUEUED and RUNNING runs of every replica,
//! kept from the run events of the one feed (its own and the others', in seq order). A
//! replica's scheduler knows only the runs it executes; queue limits and `Status` count
//! these instead, so N replicas answer as one gateway.

use clawplane_proto::v1::RunState;
use std::collections::HashMap;

#[derive(Default)]
pub struct Gauge {
    /// Active run id -> (session key, queued).
    active: HashMap<String, (String, bool)>,
    queued_in: HashMap<String, usize>,
    queued: u64,
    running: u64,
}

impl Gauge {
    /// Sets what a run event (or a stored run) says of `run_id`.
    pub fn apply(&mut self, run_id: &str, session_key: &str, state: RunState) {
        let queued = match state {
            RunState::Queued => true,
            RunState::Running => false,
            _ => {
                self.forget(run_id);
                return;
            }
        };
        if self.active.get(run_id).is_some_and(|(_, q)| *q == queued) {
            return;
        }
        self.forget(run_id);
        if queued {
            self.queued += 1;
            *self.queued_in.entry(session_key.to_string()).or_default() += 1;
        } else {
            self.running += 1;
        }
        self.active
            .insert(run_id.to_string(), (session_key.to_string(), queued));
    }

    fn forget(&mut self, run_id: &str) {
        let Some((session, queued)) = self.active.remove(run_id) else {
            return;
        };
        if !queued {
            self.running -= 1;
            return;
        }
        self.queued -= 1;
        if let Some(n) = self.queued_in.get_mut(&session) {
            *n -= 1;
            if *n == 0 {
                self.queued_in.remove(&session);
            }
        }
    }

    /// (queued, running) across the cluster.
    pub fn counts(&self) -> (u64, u64) {
        (self.queued, self.running)
    }

    /// Runs waiting in one session's queue.
    pub fn queued_in(&self, session_key: &str) -> usize {
        self.queued_in.get(session_key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_each_runs_last_state_and_repeats_change_nothing() {
        let mut g = Gauge::default();
        g.apply("a", "s", RunState::Queued);
        g.apply("b", "s", RunState::Queued);
        g.apply("c", "t", RunState::Queued);
        g.apply("a", "s", RunState::Queued);
        assert_eq!(
            (g.counts(), g.queued_in("s"), g.queued_in("t")),
            ((3, 0), 2, 1)
        );
        g.apply("a", "s", RunState::Running);
        g.apply("a", "s", RunState::Running);
        assert_eq!((g.counts(), g.queued_in("s")), ((2, 1), 1));
        g.apply("a", "s", RunState::Interrupted);
        g.apply("a", "s", RunState::Queued);
        g.apply("c", "t", RunState::Cancelled);
        g.apply("c", "t", RunState::Cancelled);
        assert_eq!(
            (g.counts(), g.queued_in("s"), g.queued_in("t")),
            ((2, 0), 2, 0)
        );
        g.apply("a", "s", RunState::Succeeded);
        g.apply("b", "s", RunState::Running);
        g.apply("b", "s", RunState::Failed);
        assert_eq!((g.counts(), g.queued_in("s")), ((0, 0), 0));
        assert!(g.active.is_empty() && g.queued_in.is_empty());
    }
}
