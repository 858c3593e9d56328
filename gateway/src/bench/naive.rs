//! The naive baseline: the same rules recomputed from scratch over the
//! current windows after every batch, with plain hash maps and no
//! incrementality. Measured beside the engine so that the ratio shows what
//! incremental evaluation buys. It follows the documented window semantics
//! (entry at max(ts, arrival), exit at the window's end) but evaluates only
//! at batch boundaries, not at every instant.

use super::{load_rules, replicate, ReplayOptions};
use jingzhi_rules::event::{parse_ndjson, Body, Event, Location, ParseContext};
use jingzhi_rules::plan::{term_input, GroupBy, RulePlan, Term, TermStats, Window};
use jingzhi_rules::space::Reference;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

/// What the baseline measured.
#[derive(Clone, Debug)]
pub struct NaiveReport {
    pub events: usize,
    pub batches: usize,
    pub seconds: f64,
    /// Alert set changes seen between consecutive batches.
    pub changes: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Cell(u32),
    District(jingzhi_rules::Sym),
    Entity(String),
}

fn interval(term: &Term, ts: u64, resolution: u64) -> (u64, u64) {
    match term.window {
        Window::Sliding(l) => {
            let step = term.step(resolution);
            (ts, (ts + l).div_ceil(step) * step)
        }
        Window::Tumbling(l) => ((ts / l + 1) * l, (ts / l + 2) * l),
    }
}

/// Which (rule, key) alerts hold at `clock`, computed from all retained events.
fn alerts_at(
    rules: &[RulePlan],
    retained: &VecDeque<(u64, Event)>,
    reference: &Reference,
    clock: u64,
    resolution: u64,
) -> HashSet<(usize, Key)> {
    let mut out = HashSet::new();
    for (r, rule) in rules.iter().enumerate() {
        let mut per_key: HashMap<Key, Vec<TermStats>> = HashMap::new();
        for (arrival, e) in retained {
            let cell = match &e.location {
                Location::Cell(c) => *c,
                Location::Sensor(id) => match reference.sensors.get(id) {
                    Some(s) => s.cell,
                    None => continue,
                },
                Location::Segment(id) => match reference.segments.get(id) {
                    Some(s) => s.cell,
                    None => continue,
                },
            };
            let key = match (rule.group_by, &e.body) {
                (GroupBy::Cell, _) => Key::Cell(cell),
                (GroupBy::District, _) => match reference.district_of(cell) {
                    Some(d) => Key::District(d),
                    None => continue,
                },
                (GroupBy::Segment, Body::Traffic(t)) => Key::Entity(t.segment_id.to_string()),
                (GroupBy::Sensor, Body::Sensor(x)) => Key::Entity(x.sensor_id.to_string()),
                _ => continue,
            };
            for (i, term) in rule.terms.iter().enumerate() {
                let (start, end) = interval(term, e.ts, resolution);
                if start.max(*arrival) > clock || clock >= end {
                    continue;
                }
                if let Some(x) = term_input(term, e) {
                    per_key
                        .entry(key.clone())
                        .or_insert_with(|| vec![TermStats::default(); rule.terms.len()])[i]
                        .merge(&TermStats::of(x, e.ts));
                }
            }
        }
        for (key, stats) in per_key {
            let values: Vec<Option<f64>> = rule
                .terms
                .iter()
                .zip(&stats)
                .map(|(t, s)| s.value(t.agg))
                .collect();
            if rule.condition.eval_terms(&values).truth() == Some(true) {
                out.insert((r, key));
            }
        }
    }
    out
}

/// Runs the baseline over the same file, rules and batch size as a replay.
pub fn run(opts: &ReplayOptions) -> Result<NaiveReport, String> {
    let data =
        std::fs::read(&opts.events).map_err(|e| format!("{}: {e}", opts.events.display()))?;
    let rules = replicate(load_rules(&opts.rules, opts.resolution_ms)?, opts.copies);
    let reference = opts.load_reference()?;
    let ctx = ParseContext::new(reference.grid.clone(), crate::app::now_ms(), 86_400_000);
    let reach = rules
        .iter()
        .map(|r| r.reach(opts.resolution_ms.max(1)))
        .max()
        .unwrap_or(0);
    let resolution = opts.resolution_ms.max(1);
    let started = Instant::now();
    let mut retained: VecDeque<(u64, Event)> = VecDeque::new();
    let mut clock = 0u64;
    let mut previous: HashSet<(usize, Key)> = HashSet::new();
    let (mut events, mut batches, mut changes) = (0, 0, 0);
    let mut rest: &[u8] = &data;
    while !rest.is_empty() {
        let cut = rest
            .get(opts.chunk_bytes.max(1)..)
            .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
            .map_or(rest.len(), |p| opts.chunk_bytes.max(1) + p + 1);
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        let parsed = parse_ndjson(chunk, &ctx);
        events += parsed.events.len();
        let max_ts = parsed.events.iter().map(|e| e.ts).max().unwrap_or(0);
        retained.extend(parsed.events.into_iter().map(|e| (clock + 1, e)));
        clock = clock.max(max_ts.saturating_sub(opts.lateness_ms));
        while retained.front().is_some_and(|(_, e)| e.ts + reach <= clock) {
            retained.pop_front();
        }
        let now = alerts_at(&rules, &retained, &reference, clock, resolution);
        changes += now.symmetric_difference(&previous).count();
        previous = now;
        batches += 1;
    }
    Ok(NaiveReport {
        events,
        batches,
        seconds: started.elapsed().as_secs_f64(),
        changes,
    })
}
