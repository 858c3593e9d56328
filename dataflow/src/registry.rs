//! Installed rule plans by id, shared by all workers.
//!
//! A plan is registered before any worker hears of its id and is never
//! changed afterwards, so the operators that look plans up always find the
//! version their data was computed for.

use crate::types::{RuleId, TermId};
use jingzhi_rules::plan::{AggFn, Expr, GroupBy, RulePlan, Term, TermStats};
use jingzhi_rules::schema::{Field, StreamKind, Type};
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

/// The field every event of a stream carries as a number, if any.
fn always_numeric(stream: StreamKind) -> Option<Field> {
    stream
        .fields()
        .iter()
        .find(|d| d.required && d.ty == Type::Number)
        .map(|d| d.field)
}

/// What the engine computes for a rule's term. The name, whether it is
/// shown, and the aggregate do not matter — all but `count` and
/// `count_distinct` merge the same partials — except where they change what
/// is collected. A plain count of a stream whose events all carry a
/// number is the count of a sum over that number: `count(traffic) over 5m`
/// and `avg(traffic.speed_kmh) over 5m` share one window.
pub fn term_shape(term: &Term) -> Term {
    let (agg, value) = match term.agg {
        AggFn::Count if term.value.is_none() => match always_numeric(term.stream) {
            Some(f) => (AggFn::Sum, Some(Expr::Field(f))),
            None => (AggFn::Count, None),
        },
        AggFn::Count => (AggFn::Count, term.value.clone()),
        AggFn::CountDistinct => (AggFn::CountDistinct, term.value.clone()),
        AggFn::Sum | AggFn::Avg | AggFn::Min | AggFn::Max | AggFn::Last => {
            (AggFn::Sum, term.value.clone())
        }
    };
    Term {
        name: String::new(),
        hidden: false,
        agg,
        value,
        ..term.clone()
    }
}

/// The shared term a rule's term is computed as: a hash of its shape
/// ([`term_shape`]) and grouping. Two terms — of one rule or of different
/// rules — with the same id are computed once.
pub fn term_id(term: &Term, group_by: GroupBy) -> TermId {
    let shape = term_shape(term);
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

/// A plain count's statistics, read from its shared sum term: each event
/// counted as 1, as if it had been computed on its own.
pub fn as_plain_count(s: &TermStats) -> TermStats {
    if s.count == 0 {
        return TermStats::default();
    }
    TermStats {
        count: s.count,
        sum: s.count as f64,
        min: 1.0,
        max: 1.0,
        last_ts: s.last_ts,
        last: 1.0,
        distinct: 0,
    }
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
