//! Retention: which finished jobs to delete, shared by `gc` and the
//! automatic clean-up that follows `run` / `start`.
//!
//! (The engine lands with the job-management issue; this file so far
//! holds the auto-GC settings and how they travel to the supervisor.)

use crate::cli::Matches;
use crate::config::GcConfig;
use crate::store::Store;

/// Auto-GC settings for one launch, after config and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoGc {
    pub older_than_secs: u64,
    pub max_jobs: Option<u64>,
    pub max_bytes: Option<u64>,
    pub scan_limit: u64,
    pub delete_limit: u64,
}

impl AutoGc {
    /// Config `[gc]`, overridden by `--auto-gc-*`; None when disabled
    /// (`[gc] auto = false` or `--no-auto-gc`).
    pub fn from_matches(m: &Matches, cfg: &GcConfig) -> Option<AutoGc> {
        if !cfg.auto || m.has("no-auto-gc") {
            return None;
        }
        let older_than_secs = m
            .get("auto-gc-older-than")
            .and_then(|d| crate::time::parse_duration(d).ok())
            .unwrap_or(cfg.older_than_secs);
        Some(AutoGc {
            older_than_secs,
            max_jobs: m.u64("auto-gc-max-jobs").or(cfg.max_jobs),
            max_bytes: m.u64("auto-gc-max-bytes").or(cfg.max_bytes),
            scan_limit: cfg.scan_limit,
            delete_limit: cfg.delete_limit,
        })
    }

    /// One argv word for the supervisor: `o=..,j=..,b=..,s=..,d=..`.
    pub fn to_arg(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
        format!(
            "o={},j={},b={},s={},d={}",
            self.older_than_secs,
            opt(self.max_jobs),
            opt(self.max_bytes),
            self.scan_limit,
            self.delete_limit
        )
    }

    pub fn from_arg(s: &str) -> Option<AutoGc> {
        let mut g = AutoGc {
            older_than_secs: 0,
            max_jobs: None,
            max_bytes: None,
            scan_limit: 0,
            delete_limit: 0,
        };
        for part in s.split(',') {
            let (k, v) = part.split_once('=')?;
            let num = || v.parse::<u64>().ok();
            let opt = || {
                if v == "-" {
                    Some(None)
                } else {
                    num().map(Some)
                }
            };
            match k {
                "o" => g.older_than_secs = num()?,
                "j" => g.max_jobs = opt()?,
                "b" => g.max_bytes = opt()?,
                "s" => g.scan_limit = num()?,
                "d" => g.delete_limit = num()?,
                _ => return None,
            }
        }
        Some(g)
    }
}

/// Best-effort bounded clean-up after a launch (runs in the supervisor).
pub fn run_auto(_store: &Store, _gc: &AutoGc) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_gc_arg_round_trip() {
        let g = AutoGc {
            older_than_secs: 86400,
            max_jobs: Some(5),
            max_bytes: None,
            scan_limit: 200,
            delete_limit: 20,
        };
        assert_eq!(AutoGc::from_arg(&g.to_arg()), Some(g));
        assert_eq!(AutoGc::from_arg("x=1"), None);
        assert_eq!(AutoGc::from_arg("o=abc"), None);
    }
}
