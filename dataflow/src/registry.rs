//! Installed rule plans by id, shared by all workers.
//!
//! A plan is registered before any worker hears of its id and is never
//! changed afterwards, so the operators that look plans up always find the
//! version their data was computed for.

use crate::types::{RuleId, TermId};
use jingzhi_rules::plan::{AggFn, GroupBy, RulePlan, Term};
use jingzhi_rules::Sym;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A plan with the names the dataflow joins on, interned once.
#[derive(Debug)]
pub struct PlanInfo {
    pub plan: Arc<RulePlan>,
    pub name: Option<Sym>,
    /// The rules whose alerts suppress this one's.
    pub inhibited_by: Vec<Sym>,
    /// The shared term each of the plan's terms is computed as.
    pub term_ids: Vec<TermId>,
}

/// The shared term a rule's term is computed as. Two terms — of one rule
/// or of different rules — that read the same events the same way get the
/// same id and are computed once: the name, whether it is shown, and the
/// aggregate (except where it changes what is collected: `count` admits
/// non-numeric values, `count_distinct` collects tokens) do not matter.
pub fn term_id(term: &Term, group_by: GroupBy) -> TermId {
    let agg = match term.agg {
        AggFn::Count => AggFn::Count,
        AggFn::CountDistinct => AggFn::CountDistinct,
        AggFn::Sum | AggFn::Avg | AggFn::Min | AggFn::Max | AggFn::Last => AggFn::Sum,
    };
    let shape = Term {
        name: String::new(),
        hidden: false,
        agg,
        ..term.clone()
    };
    // Plans serialise deterministically (structs, vectors, no maps);
    // a plan that fails to serialise gets a term of its own.
    let text = serde_json::to_string(&(shape, group_by)).unwrap_or_else(|_| format!("{term:?}"));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

#[derive(Clone, Default)]
pub struct PlanRegistry {
    plans: Arc<RwLock<HashMap<RuleId, Arc<PlanInfo>>>>,
}

impl PlanRegistry {
    pub fn insert(&self, id: RuleId, plan: Arc<RulePlan>) {
        let info = PlanInfo {
            term_ids: plan
                .terms
                .iter()
                .map(|t| term_id(t, plan.group_by))
                .collect(),
            name: Sym::intern(&plan.name).ok(),
            inhibited_by: plan
                .inhibited_by
                .iter()
                .filter_map(|n| Sym::intern(n).ok())
                .collect(),
            plan,
        };
        self.plans
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(info));
    }

    pub fn get(&self, id: RuleId) -> Option<Arc<RulePlan>> {
        self.info(id).map(|i| i.plan.clone())
    }

    pub fn info(&self, id: RuleId) -> Option<Arc<PlanInfo>> {
        self.plans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}
