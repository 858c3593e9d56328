//! From windowed partials to the alert collection: resolve places through
//! reference data, key by the term's group (fanning out to neighbouring
//! cells where a term asks), aggregate each slice, evaluate every rule of
//! a key at once (`keys`), run the temporal state machines, then apply
//! inhibition.

use crate::registry::PlanRegistry;
use crate::types::{AlertRow, GroupKey, KeyOutput, Partial, PartialKey, Place, RuleId, Time};
use crate::window::WHOLE_WINDOW;
use differential_dataflow::VecCollection;
use jingzhi_rules::plan::GroupBy;
use jingzhi_rules::space::{CellId, Grid};
use jingzhi_rules::Sym;
use timely::dataflow::StreamVec;

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

/// Builds the alert collection from the window operator's output and the
/// stream of rule installs (`true`) and removals (`false`), which every
/// worker receives in the same order.
pub fn alerts<'s>(
    partials: VecCollection<'s, Time, (PartialKey, Partial), isize>,
    rule_changes: StreamVec<'s, Time, (RuleId, bool)>,
    reference: ReferenceCollections<'s>,
    registry: PlanRegistry,
    grid: Grid,
) -> AlertCollection<'s> {
    // Segment and sensor groups are keyed by the entity itself.
    let direct =
        partials
            .clone()
            .flat_map(|((term, scope, place), p)| match (scope.group_by, place) {
                (GroupBy::Segment, Place::Segment(s)) => Some(((term, GroupKey::Segment(s)), p)),
                (GroupBy::Sensor, Place::Sensor(s)) => Some(((term, GroupKey::Sensor(s)), p)),
                _ => None,
            });
    let spatial = partials
        .filter(|((_, scope, _), _)| matches!(scope.group_by, GroupBy::Cell | GroupBy::District));
    // Contributions placed directly in a cell skip the joins.
    let in_cell = spatial
        .clone()
        .flat_map(|((term, scope, place), p)| match place {
            Place::Cell(cell) => Some(((term, scope, cell), p)),
            _ => None,
        });
    let by_sensor = spatial
        .clone()
        .flat_map(|((term, scope, place), p)| match place {
            Place::Sensor(id) => Some((id, (term, scope, p))),
            _ => None,
        })
        .join_map(reference.sensors, |_id, &(term, scope, p), &cell| {
            ((term, scope, cell), p)
        });
    let by_segment = spatial
        .flat_map(|((term, scope, place), p)| match place {
            Place::Segment(id) => Some((id, (term, scope, p))),
            _ => None,
        })
        .join_map(reference.segments, |_id, &(term, scope, p), &cell| {
            ((term, scope, cell), p)
        });
    let located = in_cell.concat(by_sensor).concat(by_segment);

    let by_cell_key = located.clone().flat_map(move |((term, scope, cell), p)| {
        let cells: Vec<CellId> = if scope.group_by == GroupBy::Cell && grid.contains(cell) {
            grid.neighbourhood(cell, u32::from(scope.rings)).collect()
        } else {
            Vec::new()
        };
        cells
            .into_iter()
            .map(move |c| ((term, GroupKey::Cell(c)), p))
    });
    let by_district_key = located
        .flat_map(|((term, scope, cell), p)| match scope.group_by {
            GroupBy::District => Some((cell, (term, p))),
            _ => None,
        })
        .join_map(
            reference.cell_district.clone(),
            |_cell, &(term, p), &district| ((term, GroupKey::District(district)), p),
        );

    // Two levels: each slice of a term's window is merged on its own; the
    // key operator then merges a key's slices per term and evaluates every
    // rule of the key at once. A change re-reads one slice, the slice
    // summaries and the key's rules, not every partial in a long window
    // once per rule.
    let keyed = by_cell_key.concat(by_district_key).concat(direct);
    let whole = keyed.clone().filter(|(_, p)| p.slice == WHOLE_WINDOW);
    let summaries = keyed
        .filter(|(_, p)| p.slice != WHOLE_WINDOW)
        .map(|((term, key), p)| ((term, key, p.slice), p))
        .reduce_named("Slices", |_key, input, output| {
            let mut merged = Partial::empty();
            merged.slice = input[0].0.slice;
            for (p, mult) in input {
                if *mult > 0 {
                    merged.merge(p, *mult as u64);
                }
            }
            output.push((merged, 1));
        })
        .map(|((term, key, _slice), p)| ((term, key), p))
        .concat(whole);
    let outputs = crate::keys::evaluate_keys(summaries, rule_changes, registry.clone());

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
