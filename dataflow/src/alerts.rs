//! From windowed partials to the alert collection: resolve places through
//! reference data, key by the rule's group (fanning out to neighbouring
//! cells where a term asks), aggregate in two levels, test the condition or
//! run the temporal state machine, then apply inhibition.

use crate::registry::PlanRegistry;
use crate::types::{
    AlertRow, Facts, GroupKey, KeyOutput, Partial, PartialKey, Place, RuleId, TermEvidence, Time,
    F64,
};
use crate::window::WHOLE_WINDOW;
use differential_dataflow::VecCollection;
use jingzhi_rules::plan::{AggFn, GroupBy, TermStats};
use jingzhi_rules::space::{CellId, Grid};
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
    grid: Grid,
) -> AlertCollection<'s> {
    // Segment and sensor groups are keyed by the entity itself.
    let direct =
        partials
            .clone()
            .flat_map(|((rule, scope, place), p)| match (scope.group_by, place) {
                (GroupBy::Segment, Place::Segment(s)) => Some(((rule, GroupKey::Segment(s)), p)),
                (GroupBy::Sensor, Place::Sensor(s)) => Some(((rule, GroupKey::Sensor(s)), p)),
                _ => None,
            });
    let spatial = partials
        .filter(|((_, scope, _), _)| matches!(scope.group_by, GroupBy::Cell | GroupBy::District));
    // Contributions placed directly in a cell skip the joins.
    let in_cell = spatial
        .clone()
        .flat_map(|((rule, scope, place), p)| match place {
            Place::Cell(cell) => Some(((rule, scope, cell), p)),
            _ => None,
        });
    let by_sensor = spatial
        .clone()
        .flat_map(|((rule, scope, place), p)| match place {
            Place::Sensor(id) => Some((id, (rule, scope, p))),
            _ => None,
        })
        .join_map(reference.sensors, |_id, &(rule, scope, p), &cell| {
            ((rule, scope, cell), p)
        });
    let by_segment = spatial
        .flat_map(|((rule, scope, place), p)| match place {
            Place::Segment(id) => Some((id, (rule, scope, p))),
            _ => None,
        })
        .join_map(reference.segments, |_id, &(rule, scope, p), &cell| {
            ((rule, scope, cell), p)
        });
    let located = in_cell.concat(by_sensor).concat(by_segment);

    let by_cell_key = located.clone().flat_map(move |((rule, scope, cell), p)| {
        let cells: Vec<CellId> = if scope.group_by == GroupBy::Cell && grid.contains(cell) {
            grid.neighbourhood(cell, u32::from(scope.rings)).collect()
        } else {
            Vec::new()
        };
        cells
            .into_iter()
            .map(move |c| ((rule, GroupKey::Cell(c)), p))
    });
    let by_district_key = located
        .flat_map(|((rule, scope, cell), p)| match scope.group_by {
            GroupBy::District => Some((cell, (rule, p))),
            _ => None,
        })
        .join_map(
            reference.cell_district.clone(),
            |_cell, &(rule, p), &district| ((rule, GroupKey::District(district)), p),
        );

    // Two levels: each slice of a term's window is merged on its own, then
    // a key's slices and terms are merged and tested. A change re-reads one
    // slice and the slice summaries, not every partial in a long window.
    let keyed = by_cell_key.concat(by_district_key).concat(direct);
    let whole = keyed.clone().filter(|(_, p)| p.slice == WHOLE_WINDOW);
    let eval_registry = registry.clone();
    let outputs = keyed
        .filter(|(_, p)| p.slice != WHOLE_WINDOW)
        .map(|((rule, key), p)| ((rule, key, p.term, p.slice), p))
        .reduce_named("Slices", |_key, input, output| {
            let mut merged = Partial::empty(input[0].0.term);
            merged.slice = input[0].0.slice;
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
            if let Some(o) = evaluate(&eval_registry, rule, input) {
                output.push((o, 1));
            }
        });

    let plain = outputs.clone().flat_map(|(k, o)| match o {
        KeyOutput::Alert(a) => Some((k, a)),
        KeyOutput::Facts(_) => None,
    });
    let facts = outputs.flat_map(|(k, o)| match o {
        KeyOutput::Facts(f) => Some((k, f)),
        KeyOutput::Alert(_) => None,
    });
    let own = plain.concat(crate::temporal::states(facts, registry.clone()));
    inhibit(own, reference.cell_district, registry)
}

/// Suppresses an alert while a rule it is inhibited by has an alert of its
/// own on the same key, or on the district containing the key's cell.
fn inhibit<'s>(
    own: AlertCollection<'s>,
    cell_district: VecCollection<'s, Time, (CellId, Sym), isize>,
    registry: PlanRegistry,
) -> AlertCollection<'s> {
    let names = registry.clone();
    let probes_registry = registry.clone();
    let cell_registry = registry.clone();
    let district_registry = registry;
    let active = own
        .clone()
        .flat_map(move |((rule, key), _)| names.info(rule).and_then(|i| i.name).map(|n| (n, key)))
        .distinct();
    let same_key = own.clone().flat_map(move |((rule, key), _)| {
        let inhibitors = probes_registry
            .info(rule)
            .map(|i| i.inhibited_by.clone())
            .unwrap_or_default();
        inhibitors.into_iter().map(move |a| ((a, key), (rule, key)))
    });
    let via_district = own
        .clone()
        .flat_map(move |((rule, key), _)| match key {
            GroupKey::Cell(c)
                if cell_registry
                    .info(rule)
                    .is_some_and(|i| !i.inhibited_by.is_empty()) =>
            {
                Some((c, rule))
            }
            _ => None,
        })
        .join_map(cell_district, |&cell, &rule, &district| {
            (rule, cell, district)
        })
        .flat_map(move |(rule, cell, district)| {
            let inhibitors = district_registry
                .info(rule)
                .map(|i| i.inhibited_by.clone())
                .unwrap_or_default();
            inhibitors.into_iter().map(move |a| {
                (
                    (a, GroupKey::District(district)),
                    (rule, GroupKey::Cell(cell)),
                )
            })
        });
    let suppressed = same_key
        .concat(via_district)
        .semijoin(active)
        .map(|(_, rule_key)| rule_key)
        .distinct();
    own.antijoin(suppressed)
}

/// Aggregates one key's partials and tests the rule's condition, or hands a
/// temporal rule's facts on.
fn evaluate(
    registry: &PlanRegistry,
    rule: RuleId,
    input: &[(&Partial, isize)],
) -> Option<KeyOutput> {
    let plan = registry.get(rule)?;
    let mut merged: Vec<Partial> = (0..plan.terms.len())
        .map(|t| Partial::empty(t as u16))
        .collect();
    let mut tokens: Vec<Vec<u64>> = vec![Vec::new(); plan.terms.len()];
    for (p, mult) in input {
        let t = p.term as usize;
        if *mult <= 0 || t >= merged.len() {
            continue;
        }
        merged[t].merge(p, *mult as u64);
        if plan.terms[t].agg == AggFn::CountDistinct {
            tokens[t].push(p.token);
        }
    }
    let stats: Vec<TermStats> = merged
        .iter()
        .zip(&mut tokens)
        .map(|(p, toks)| {
            if p.count == 0 {
                return TermStats::default();
            }
            let mut s = p.stats();
            toks.sort_unstable();
            toks.dedup();
            s.distinct = toks.len() as u64;
            s
        })
        .collect();
    let values: Vec<Option<f64>> = plan
        .terms
        .iter()
        .zip(&stats)
        .map(|(t, s)| s.value(t.agg))
        .collect();
    let evidence = stats
        .iter()
        .map(|s| TermEvidence {
            count: s.count,
            sum: F64(s.sum),
            min: F64(s.min),
            max: F64(s.max),
            last: F64(s.last),
            distinct: s.distinct,
        })
        .collect();
    if plan.is_temporal() {
        return Some(KeyOutput::Facts(Facts {
            values: values.into_iter().map(|v| v.map(F64)).collect(),
            evidence,
        }));
    }
    if plan.condition.eval_terms(&values).truth() != Some(true) {
        return None;
    }
    Some(KeyOutput::Alert(AlertRow {
        severity: plan.severity_for(&values),
        values: values.into_iter().map(|v| v.map(F64)).collect(),
        evidence,
    }))
}
