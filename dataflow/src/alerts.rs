//! From events to the alert collection: place each event's contributions
//! (`place`), resolve those keyed through reference data (`sources`), keep
//! every key's windows and judge its rules (`keys`), then apply inhibition.

use crate::keys::keys;
use crate::place::{place, KeyInput, WindowConfig, WindowInput, WindowStats};
use crate::registry::PlanRegistry;
use crate::sources::{sources, Control};
use crate::types::{AlertRow, GroupKey, RuleId, Time};
use differential_dataflow::VecCollection;
use jingzhi_rules::space::{CellId, Grid};
use jingzhi_rules::Sym;
use std::sync::Arc;
use timely::dataflow::operators::vec::Partition;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

pub type AlertCollection<'s> = VecCollection<'s, Time, ((RuleId, GroupKey), AlertRow), isize>;

/// How a worker's alert dataflow is built.
pub struct AlertsSetup {
    pub registry: PlanRegistry,
    pub grid: Grid,
    pub window: WindowConfig,
    pub update_interval_ms: Time,
    pub worker: u32,
    pub stats: Arc<WindowStats>,
}

/// Builds the alert collection from a worker's input (events, rule
/// installs and removals), the control stream every worker receives in the
/// same order (rule changes, reference data), and the cell → district
/// collection that inhibition joins on.
pub fn alerts<'s>(
    input: StreamVec<'s, Time, WindowInput>,
    control: StreamVec<'s, Time, Control>,
    cell_district: VecCollection<'s, Time, (CellId, Sym), isize>,
    setup: AlertsSetup,
) -> AlertCollection<'s> {
    let placed = place(input, setup.window, setup.grid.clone(), setup.stats.clone());
    let mut parts = placed.partition(2, |x| match x {
        KeyInput::Sourced(..) => (1, x),
        _ => (0, x),
    });
    let (Some(sourced), Some(direct)) = (parts.pop(), parts.pop()) else {
        unreachable!("partition into two parts gives two streams");
    };
    let summaries = sources(
        sourced,
        control.clone(),
        setup.registry.clone(),
        setup.grid,
        setup.worker,
        setup.stats.clone(),
    );
    let own = keys(
        direct.concat(summaries),
        control,
        setup.registry.clone(),
        setup.update_interval_ms,
        setup.stats,
    );
    inhibit(own, cell_district, setup.registry)
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
