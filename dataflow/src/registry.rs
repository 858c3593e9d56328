//! Installed rule plans by id, shared by all workers.
//!
//! A plan is registered before any worker hears of its id and is never
//! changed afterwards, so the operators that look plans up always find the
//! version their data was computed for.

use crate::types::RuleId;
use jingzhi_rules::plan::RulePlan;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone, Default)]
pub struct PlanRegistry {
    plans: Arc<RwLock<HashMap<RuleId, Arc<RulePlan>>>>,
}

impl PlanRegistry {
    pub fn insert(&self, id: RuleId, plan: Arc<RulePlan>) {
        self.plans
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, plan);
    }

    pub fn get(&self, id: RuleId) -> Option<Arc<RulePlan>> {
        self.plans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}
