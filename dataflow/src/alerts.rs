//! From windowed partials to the alert collection: resolve places through
//! reference data, key by the rule's group, aggregate, test the condition.

use crate::registry::PlanRegistry;
use crate::types::{
    AlertRow, GroupKey, Partial, PartialKey, Place, RuleId, TermEvidence, Time, F64,
};
use crate::window::WHOLE_WINDOW;
use differential_dataflow::VecCollection;
use jingzhi_rules::plan::{GroupBy, TermStats};
use jingzhi_rules::space::CellId;
use jingzhi_rules::Sym;

/// Reference data as collections.
pub struct ReferenceCollections<'s> {
    /// sensor id → cell
    pub sensors: VecCollection<'s, Time, (Sym, CellId), isize>,
    /// segment id → cell
    pub segments: VecCollection<'s, Time, (Sym, CellId), isize>,
    /// cell → district
    pub cell_district: VecCollection<'s, Time, (CellId, Sym), isize>,
}

pub type AlertCollection<'s> = VecCollection<'s, Time, ((RuleId, GroupKey), AlertRow), isize>;

/// Builds the alert collection from the window operator's output.
pub fn alerts<'s>(
    partials: VecCollection<'s, Time, (PartialKey, Partial), isize>,
    reference: ReferenceCollections<'s>,
    registry: PlanRegistry,
) -> AlertCollection<'s> {
    // Contributions placed directly in a cell skip the joins.
    let in_cell = partials
        .clone()
        .flat_map(|((rule, group_by, place), p)| match place {
            Place::Cell(cell) => Some(((rule, group_by, cell), p)),
            _ => None,
        });
    let by_sensor = partials
        .clone()
        .flat_map(|((rule, group_by, place), p)| match place {
            Place::Sensor(id) => Some((id, (rule, group_by, p))),
            _ => None,
        })
        .join_map(reference.sensors, |_id, &(rule, group_by, p), &cell| {
            ((rule, group_by, cell), p)
        });
    let by_segment = partials
        .flat_map(|((rule, group_by, place), p)| match place {
            Place::Segment(id) => Some((id, (rule, group_by, p))),
            _ => None,
        })
        .join_map(reference.segments, |_id, &(rule, group_by, p), &cell| {
            ((rule, group_by, cell), p)
        });
    let located = in_cell.concat(by_sensor).concat(by_segment);

    let by_cell_key = located
        .clone()
        .flat_map(|((rule, group_by, cell), p)| match group_by {
            GroupBy::Cell => Some(((rule, GroupKey::Cell(cell)), p)),
            GroupBy::District => None,
        });
    let by_district_key = located
        .flat_map(|((rule, group_by, cell), p)| match group_by {
            GroupBy::District => Some((cell, (rule, p))),
            GroupBy::Cell => None,
        })
        .join_map(reference.cell_district, |_cell, &(rule, p), &district| {
            ((rule, GroupKey::District(district)), p)
        });

    // Two levels: each slice of a term's window is merged on its own, then
    // a key's slices and terms are merged and tested. A change re-reads one
    // slice and the slice summaries, not every partial in a long window.
    let keyed = by_cell_key.concat(by_district_key);
    let whole = keyed.clone().filter(|(_, p)| p.slice == WHOLE_WINDOW);
    keyed
        .filter(|(_, p)| p.slice != WHOLE_WINDOW)
        .map(|((rule, key), p)| ((rule, key, p.term, p.slice), p))
        .reduce_named("Slices", |_key, input, output| {
            let first = input[0].0;
            let mut merged = Partial {
                count: 0,
                sum: F64(0.0),
                ..*first
            };
            for (p, mult) in input {
                if *mult > 0 {
                    merged.merge(p, *mult as u64);
                }
            }
            output.push((merged, 1));
        })
        .map(|((rule, key, _term, _slice), p)| ((rule, key), p))
        .concat(whole)
        .reduce_named("Rules", move |&(rule, _key), input, output| {
            if let Some(row) = evaluate(&registry, rule, input) {
                output.push((row, 1));
            }
        })
}

/// Aggregates one key's partials and tests the rule's condition.
fn evaluate(
    registry: &PlanRegistry,
    rule: RuleId,
    input: &[(&Partial, isize)],
) -> Option<AlertRow> {
    let plan = registry.get(rule)?;
    let mut merged: Vec<Partial> = (0..plan.terms.len())
        .map(|t| Partial {
            count: 0,
            ..Partial::new(t as u16, 0, 0.0)
        })
        .collect();
    for (p, mult) in input {
        if let Some(slot) = merged.get_mut(p.term as usize) {
            if *mult > 0 {
                slot.merge(p, *mult as u64);
            }
        }
    }
    let stats: Vec<TermStats> = merged
        .iter()
        .map(|p| {
            if p.count == 0 {
                TermStats::default()
            } else {
                p.stats()
            }
        })
        .collect();
    let values: Vec<Option<f64>> = plan
        .terms
        .iter()
        .zip(&stats)
        .map(|(t, s)| s.value(t.agg))
        .collect();
    if plan.condition.eval_terms(&values).truth() != Some(true) {
        return None;
    }
    Some(AlertRow {
        severity: plan.severity,
        values: values.into_iter().map(|v| v.map(F64)).collect(),
        evidence: stats
            .iter()
            .map(|s| TermEvidence {
                count: s.count,
                sum: F64(s.sum),
                min: F64(s.min),
                max: F64(s.max),
            })
            .collect(),
    })
}
