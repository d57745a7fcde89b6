//! What ran, and what it cost: the fields that tell jobs apart and say
//! what a finished one used, shared by every answer that describes a job
//! (`status`, `wait`, `run`/`start`, list entries, `job.finished`).
//!
//! Invariants
//! - `command` is meta.json's, as stored (the words given, or the one
//!   shell string); `cwd` is the recorded working directory.
//! - The costs come from `state.result` only, written once by the
//!   supervisor from the `wait4` that reaped the job's root process: CPU
//!   time and peak resident size of the root and of every descendant it
//!   reaped (a daemonised grandchild that the root never waited for is
//!   not counted: the kernel gives its rusage to whoever reaps it). They
//!   are shown only for a terminal job, and absent when the job never
//!   ran or its supervisor was lost before reaping it.
//!
//! Rejected: sampling /proc while the job runs (a cost on the job's
//! path, and a peak that a sampler can miss); summing the descendants'
//! /proc entries at the end (they are gone by then).

use serde::Serialize;

use crate::job::{JobResult, Meta, State};

/// `command` and `cwd`, as meta.json stores them.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Ran {
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

impl Ran {
    pub fn of(meta: &Meta) -> Ran {
        Ran {
            command: meta.command.clone(),
            cwd: meta.cwd.clone(),
        }
    }
}

/// CPU time and peak memory of a finished job (all absent otherwise).
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_user_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_sys_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rss_kb: Option<u64>,
}

impl Cost {
    /// The recorded cost, if the state is terminal.
    pub fn of(st: &State) -> Cost {
        if st.status().is_terminal() {
            Cost::from_result(&st.result)
        } else {
            Cost::default()
        }
    }

    pub fn from_result(r: &JobResult) -> Cost {
        Cost {
            cpu_user_ms: r.cpu_user_ms,
            cpu_sys_ms: r.cpu_sys_ms,
            max_rss_kb: r.max_rss_kb,
        }
    }
}

/// `Ran` then `Cost`: what the answers append after their own fields.
#[derive(Serialize, Debug, Clone, Default)]
pub struct RanCost {
    #[serde(flatten)]
    pub ran: Ran,
    #[serde(flatten)]
    pub cost: Cost,
}

impl RanCost {
    pub fn new(meta: &Meta, st: &State) -> RanCost {
        RanCost {
            ran: Ran::of(meta),
            cost: Cost::of(st),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Status;

    #[test]
    fn cost_only_once_terminal() {
        let mut st = State::created("X");
        st.result.record_usage(Some(crate::sys::Usage {
            user_ms: 12,
            sys_ms: 3,
            max_rss_kb: 2048,
        }));
        st.job.status = Some(Status::Running);
        assert_eq!(Cost::of(&st), Cost::default());
        st.job.status = Some(Status::Exited);
        let meta: Meta =
            serde_json::from_str(r#"{"job":{"id":"X"},"command":["echo","hi"],"cwd":"/w"}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&RanCost::new(&meta, &st)).unwrap(),
            r#"{"command":["echo","hi"],"cwd":"/w","cpu_user_ms":12,"cpu_sys_ms":3,"max_rss_kb":2048}"#
        );
        // A failure that never reaped anything records no cost.
        let mut r = JobResult::default();
        r.record_usage(None);
        assert_eq!(Cost::from_result(&r), Cost::default());
    }
}
