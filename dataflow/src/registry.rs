//! Installed rule plans by id, shared by all workers.
//!
//! A plan is registered before any worker hears of its id and is never
//! changed afterwards, so the operators that look plans up always find the
//! version their data was computed for.

use crate::types::RuleId;
use jingzhi_rules::plan::RulePlan;
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
}

#[derive(Clone, Default)]
pub struct PlanRegistry {
    plans: Arc<RwLock<HashMap<RuleId, Arc<PlanInfo>>>>,
}

impl PlanRegistry {
    pub fn insert(&self, id: RuleId, plan: Arc<RulePlan>) {
        let info = PlanInfo {
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
