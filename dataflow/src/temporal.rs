//! The state machine of alerts that depend on history — a hold duration
//! (`for 2m`), a clear condition (hysteresis) or a sequence (`after …
//! within`). The keys operator runs one per (rule, key), in time order,
//! at every time the key's terms change and when a hold expires.
//!
//! Per key, at each time something changes:
//!
//! 1. The *run*: while the raise condition holds, the run continues; it
//!    starts when the condition becomes true — and is good only if, for a
//!    sequence, its A term is non-empty at that moment; it ends when the
//!    condition stops holding.
//! 2. An active alert clears when its key has no data left, or when the
//!    clear condition is true, or — without a clear condition — when the run
//!    ends.
//! 3. An inactive alert is raised once a good run has lasted the hold.
//!
//! The same machine is written independently in `rules::oracle`.

use crate::types::Time;
use jingzhi_rules::plan::{FastRule, RulePlan};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Temporal {
    run_start: Option<Time>,
    run_ok: bool,
    active: bool,
}

impl Temporal {
    /// Steps the machine at `now` with the key's term values (`None`: the
    /// key has no data). Returns whether the alert is active, and when to
    /// look again if a hold is running.
    pub fn step(
        &mut self,
        plan: &RulePlan,
        fast: &FastRule,
        now: Time,
        values: Option<&[Option<f64>]>,
    ) -> (bool, Option<Time>) {
        let raise = values.is_some_and(|v| fast.condition.truth(v) == Some(true));
        if raise {
            if self.run_start.is_none() {
                self.run_start = Some(now);
                self.run_ok = match plan.after {
                    Some(a) => values
                        .and_then(|v| v.get(a).copied().flatten())
                        .is_some_and(|n| n >= 1.0),
                    None => true,
                };
            }
        } else {
            self.run_start = None;
            self.run_ok = false;
        }
        if self.active {
            let clear = match (values, &fast.clear) {
                (None, _) => true,
                (Some(v), Some(c)) => c.truth(v) == Some(true),
                (Some(_), None) => self.run_start.is_none(),
            };
            if clear {
                self.active = false;
            }
        }
        let mut wake = None;
        if !self.active && self.run_ok {
            if let Some(s) = self.run_start {
                let due = s.saturating_add(plan.hold_ms);
                if now >= due {
                    self.active = true;
                } else {
                    wake = Some(due);
                }
            }
        }
        (self.active, wake)
    }

    pub fn is_idle(&self) -> bool {
        !self.active && self.run_start.is_none()
    }
}
