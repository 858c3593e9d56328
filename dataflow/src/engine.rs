//! The engine: timely workers on their own threads, fed by bounded command
//! channels, reporting alert changes in time order.
//!
//! Every worker builds the same dataflow. Events go to one worker each
//! (routed by place, so that one place's events combine on one worker);
//! clock advances, rule changes and reference data go to all workers, in one
//! order, under one lock. After each step a worker reports its output
//! frontier; the merger thread releases the changes of every time that all
//! workers have finished, consolidated and in order.

use crate::alerts::{alerts, AlertsSetup};
use crate::place::{ChunkReport, WindowConfig, WindowInput, WindowStats};
use crate::registry::PlanRegistry;
use crate::sources::{route_sym, Control};
use crate::types::{AlertRow, AlertUpdate, GroupKey, RuleId, Time};
use differential_dataflow::input::Input as _;
use jingzhi_rules::event::{Event, Location, ParseContext};
use jingzhi_rules::plan::RulePlan;
use jingzhi_rules::space::{CellId, Grid, ReferenceChange};
use jingzhi_rules::Sym;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;
use timely::dataflow::operators::vec::Input as _;
use tokio::sync::mpsc;

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Timely worker threads.
    pub workers: usize,
    pub window: WindowConfig,
    /// Commands buffered per worker before senders wait.
    pub command_capacity: usize,
    /// The city grid, for rules that reach neighbouring cells.
    pub grid: Grid,
    /// An alert's value-only updates go out at most once per this much
    /// engine time (0: every one); raises, clears and severity changes
    /// always go out at once.
    pub update_interval_ms: Time,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            window: WindowConfig::default(),
            command_capacity: 1024,
            grid: Grid::default(),
            update_interval_ms: 1000,
        }
    }
}

/// What the engine reports, in order.
#[derive(Debug)]
pub enum EngineOutput {
    /// The consolidated changes to the alert collection at `time`.
    Changes {
        time: Time,
        updates: Vec<AlertUpdate>,
    },
    /// Every change at a time before `through` has been reported.
    Complete { through: Time },
    /// A worker stopped; no further output will come.
    Stopped { reason: String },
}

#[derive(Debug)]
enum Command {
    Events(Vec<Event>),
    Ndjson {
        bytes: Vec<u8>,
        context: Arc<ParseContext>,
        reply: std_mpsc::Sender<ChunkReport>,
    },
    Advance(Time),
    AddRule(RuleId, Arc<RulePlan>),
    RemoveRule(RuleId),
    Reference(Arc<Vec<ReferenceChange>>),
    Shutdown,
}

/// An alert as the dataflow keys it.
type KeyedAlert = ((RuleId, GroupKey), AlertRow);

enum WorkerReport {
    Updates(Vec<(KeyedAlert, Time, isize)>),
    Frontier(usize, Time),
    Exited,
}

/// Errors the engine can report to its caller.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the dataflow engine has stopped")]
    Stopped,
    #[error("could not start timely workers: {0}")]
    Start(String),
    #[error("the clock cannot go back from {current} to {requested}")]
    ClockBackwards { current: Time, requested: Time },
}

struct ClockState {
    clock: Time,
}

/// A running engine. Dropping it stops the workers.
pub struct Engine {
    senders: Vec<mpsc::Sender<Command>>,
    threads: Vec<Thread>,
    control: tokio::sync::Mutex<ClockState>,
    registry: PlanRegistry,
    next_rule: AtomicU32,
    next_chunk: AtomicUsize,
    stats: Vec<Arc<WindowStats>>,
    /// Each worker's last reported output frontier (0 before its first).
    frontiers: Arc<[AtomicU64]>,
    guards: Mutex<Option<timely::communication::WorkerGuards<()>>>,
}

impl Engine {
    /// Starts the workers with an empty alert collection at clock `clock`.
    /// Returns the engine and the receiver of its output.
    pub fn start(
        config: EngineConfig,
        clock: Time,
    ) -> Result<(Engine, std_mpsc::Receiver<EngineOutput>), EngineError> {
        let workers = config.workers.max(1);
        let mut senders = Vec::with_capacity(workers);
        let mut receivers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::channel(config.command_capacity.max(1));
            senders.push(tx);
            receivers.push(Some(rx));
        }
        let receivers = Arc::new(Mutex::new(receivers));
        let stats: Vec<Arc<WindowStats>> = (0..workers).map(|_| Arc::default()).collect();
        let registry = PlanRegistry::default();
        let (report_tx, report_rx) = std_mpsc::channel::<WorkerReport>();
        let (thread_tx, thread_rx) = std_mpsc::channel::<(usize, Thread)>();
        let (out_tx, out_rx) = std_mpsc::channel();

        let worker_stats = stats.clone();
        let worker_registry = registry.clone();
        let window_config = config.window.clone();
        let grid = config.grid.clone();
        let update_interval_ms = config.update_interval_ms;
        let report_tx = Mutex::new(report_tx);
        let thread_tx = Mutex::new(thread_tx);
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let index = worker.index();
            let report = report_tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let _ = thread_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send((index, std::thread::current()));
            let rx = receivers.lock().unwrap_or_else(|e| e.into_inner())[index].take();
            let Some(rx) = rx else { return };
            let setup = WorkerSetup {
                window: window_config.clone(),
                stats: worker_stats[index].clone(),
                registry: worker_registry.clone(),
                grid: grid.clone(),
                clock,
                update_interval_ms,
            };
            run_worker(worker, rx, report, setup);
        })
        .map_err(EngineError::Start)?;

        let mut threads: Vec<Option<Thread>> = vec![None; workers];
        for _ in 0..workers {
            let (i, t) = thread_rx
                .recv()
                .map_err(|_| EngineError::Start("a worker did not start".into()))?;
            threads[i] = Some(t);
        }
        let threads = threads.into_iter().flatten().collect();

        let frontiers: Arc<[AtomicU64]> = (0..workers).map(|_| AtomicU64::new(0)).collect();
        let merge_frontiers = frontiers.clone();
        std::thread::Builder::new()
            .name("jingzhi-merge".into())
            .spawn(move || merge_outputs(workers, report_rx, out_tx, merge_frontiers))
            .map_err(|e| EngineError::Start(e.to_string()))?;

        Ok((
            Engine {
                senders,
                threads,
                control: tokio::sync::Mutex::new(ClockState { clock }),
                registry,
                next_rule: AtomicU32::new(1),
                next_chunk: AtomicUsize::new(0),
                stats,
                frontiers,
                guards: Mutex::new(Some(guards)),
            },
            out_rx,
        ))
    }

    pub fn workers(&self) -> usize {
        self.senders.len()
    }

    /// The clock as last advanced.
    pub async fn clock(&self) -> Time {
        self.control.lock().await.clock
    }

    async fn send(&self, worker: usize, cmd: Command) -> Result<(), EngineError> {
        self.senders[worker]
            .send(cmd)
            .await
            .map_err(|_| EngineError::Stopped)?;
        self.threads[worker].unpark();
        Ok(())
    }

    async fn broadcast(&self, make: impl Fn() -> Command) -> Result<(), EngineError> {
        for w in 0..self.senders.len() {
            self.send(w, make()).await?;
        }
        Ok(())
    }

    /// Hands events to the workers and returns the clock at that moment.
    /// Events enter the dataflow at the next instant after that clock (their
    /// windows start at `ts` or then, whichever is later).
    pub async fn send_events(&self, events: Vec<Event>) -> Result<Time, EngineError> {
        let control = self.control.lock().await;
        let n = self.senders.len();
        if n == 1 {
            self.send(0, Command::Events(events)).await?;
            return Ok(control.clock);
        }
        let mut parts: Vec<Vec<Event>> = (0..n)
            .map(|_| Vec::with_capacity(events.len() / n + 1))
            .collect();
        for e in events {
            let w = match &e.location {
                Location::Cell(c) => *c as usize % n,
                Location::Sensor(s) | Location::Segment(s) => sym_route(*s) % n,
            };
            parts[w].push(e);
        }
        for (w, part) in parts.into_iter().enumerate() {
            if !part.is_empty() {
                self.send(w, Command::Events(part)).await?;
            }
        }
        Ok(control.clock)
    }

    /// Hands a chunk of NDJSON lines to the next worker, which parses them
    /// itself and reports to `reply`. For bulk replay: rejected lines are
    /// only counted, not described.
    pub async fn send_ndjson(
        &self,
        bytes: Vec<u8>,
        context: Arc<ParseContext>,
        reply: std_mpsc::Sender<ChunkReport>,
    ) -> Result<(), EngineError> {
        let _control = self.control.lock().await;
        let worker = self.next_chunk.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        self.send(
            worker,
            Command::Ndjson {
                bytes,
                context,
                reply,
            },
        )
        .await
    }

    /// Advances the clock: every time up to and including `clock` becomes
    /// final. A clock at or before the current one is ignored.
    pub async fn advance(&self, clock: Time) -> Result<(), EngineError> {
        let mut control = self.control.lock().await;
        if clock <= control.clock {
            return Ok(());
        }
        control.clock = clock;
        self.broadcast(|| Command::Advance(clock)).await
    }

    /// Installs a rule at the next instant; returns its id.
    pub async fn add_rule(&self, plan: Arc<RulePlan>) -> Result<RuleId, EngineError> {
        let _control = self.control.lock().await;
        let id = self.next_rule.fetch_add(1, Ordering::Relaxed);
        self.registry.insert(id, plan.clone());
        self.broadcast(|| Command::AddRule(id, plan.clone()))
            .await?;
        Ok(id)
    }

    /// Removes a rule at the next instant; its alerts retract then.
    pub async fn remove_rule(&self, id: RuleId) -> Result<(), EngineError> {
        let _control = self.control.lock().await;
        self.broadcast(|| Command::RemoveRule(id)).await
    }

    /// Applies reference data changes at the next instant (every worker
    /// resolves places through its own copy).
    pub async fn update_reference(&self, changes: Vec<ReferenceChange>) -> Result<(), EngineError> {
        let _control = self.control.lock().await;
        let changes = Arc::new(changes);
        self.broadcast(|| Command::Reference(changes.clone())).await
    }

    /// The plan installed under `id`.
    pub fn plan(&self, id: RuleId) -> Option<Arc<RulePlan>> {
        self.registry.get(id)
    }

    /// Records held by the window operators (pending entries and exits) and
    /// events kept as history, summed over workers.
    pub fn retained(&self) -> RetainedStats {
        let mut r = RetainedStats::default();
        for s in &self.stats {
            r.pending_inserts += s.pending_inserts.load(Ordering::Relaxed);
            r.pending_retracts += s.pending_retracts.load(Ordering::Relaxed);
            r.history_events += s.history_events.load(Ordering::Relaxed);
            r.events += s.events.load(Ordering::Relaxed);
            r.expired_contributions += s.expired_contributions.load(Ordering::Relaxed);
            r.contributions += s.contributions.load(Ordering::Relaxed);
            r.coalesced_updates += s.coalesced_updates.load(Ordering::Relaxed);
        }
        r
    }

    /// Each worker's progress: the output frontier it last reported (every
    /// time before it is done on that worker), by worker index; 0 before
    /// its first report, `Time::MAX` once it has finished.
    pub fn worker_frontiers(&self) -> Vec<Time> {
        self.frontiers
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .collect()
    }

    /// Stops the workers after the commands already sent, and waits for them.
    pub async fn shutdown(&self) {
        {
            let _control = self.control.lock().await;
            let _ = self.broadcast(|| Command::Shutdown).await;
        }
        let guards = self.guards.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(guards) = guards {
            let _ = tokio::task::spawn_blocking(move || drop(guards)).await;
        }
    }
}

/// Summed counters of the window operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetainedStats {
    pub pending_inserts: u64,
    pub pending_retracts: u64,
    pub history_events: u64,
    pub events: u64,
    pub expired_contributions: u64,
    /// Contributions placed (event × term × key).
    pub contributions: u64,
    /// Value-only alert updates held back by the update interval.
    pub coalesced_updates: u64,
}

impl RetainedStats {
    /// Records the engine holds for open windows.
    pub fn window_records(&self) -> u64 {
        self.pending_inserts + self.pending_retracts
    }
}

fn sym_route(s: Sym) -> usize {
    // Symbols are dense integers; hashing the text keeps routing stable
    // across processes.
    route_sym(s) as usize
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Dropping the senders disconnects the workers, which then exit.
        self.senders.clear();
        for t in &self.threads {
            t.unpark();
        }
        let guards = self.guards.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(guards);
    }
}

/// What each worker's dataflow is built from.
struct WorkerSetup {
    window: WindowConfig,
    stats: Arc<WindowStats>,
    registry: PlanRegistry,
    grid: Grid,
    clock: Time,
    update_interval_ms: Time,
}

/// One worker: build the dataflow, then apply commands and step.
fn run_worker(
    worker: &mut timely::worker::Worker,
    mut rx: mpsc::Receiver<Command>,
    report: std_mpsc::Sender<WorkerReport>,
    setup: WorkerSetup,
) {
    let WorkerSetup {
        window: window_config,
        stats,
        registry,
        grid,
        clock,
        update_interval_ms,
    } = setup;
    let index = worker.index();
    let sink = report.clone();
    let (mut input, mut control_in, mut cells_in, probe) = worker.dataflow::<Time, _, _>(|scope| {
        let (input, stream) = scope.new_input::<WindowInput>();
        let (control_in, control) = scope.new_input::<Control>();
        let (cells_in, cell_district) = scope.new_collection::<(CellId, Sym), isize>();
        let setup = AlertsSetup {
            registry,
            grid,
            window: window_config,
            update_interval_ms,
            worker: index as u32,
            stats,
        };
        let (probe, _) = alerts(stream, control, cell_district, setup)
            .inspect_batch(move |_stamp, updates| {
                if !updates.is_empty() {
                    let _ = sink.send(WorkerReport::Updates(updates.to_vec()));
                }
            })
            .probe();
        (input, control_in, cells_in, probe)
    });

    let epoch = clock + 1;
    input.advance_to(epoch);
    control_in.advance_to(epoch);
    cells_in.advance_to(epoch);
    // Worker 0 owns the reference collections' contents.
    let mut cell_districts: BTreeMap<CellId, Sym> = BTreeMap::new();
    let mut reported = 0;
    let mut running = true;

    while running {
        let mut handled = 0;
        while handled < 256 {
            match rx.try_recv() {
                Ok(cmd) => {
                    handled += 1;
                    match cmd {
                        Command::Events(events) => {
                            for e in events {
                                input.send(WindowInput::Event(e));
                            }
                        }
                        Command::Ndjson {
                            bytes,
                            context,
                            reply,
                        } => input.send(WindowInput::Ndjson {
                            bytes,
                            context,
                            reply,
                        }),
                        Command::AddRule(id, plan) => {
                            input.send(WindowInput::AddRule(id, plan));
                            control_in.send(Control::AddRule(id));
                        }
                        Command::RemoveRule(id) => {
                            input.send(WindowInput::RemoveRule(id));
                            control_in.send(Control::RemoveRule(id));
                        }
                        Command::Reference(changes) => {
                            for change in changes.iter() {
                                control_in.send(Control::Reference(change.clone()));
                                // Worker 0 owns the cell → district
                                // collection's contents (inhibition joins on it).
                                if let (0, ReferenceChange::AssignCell { cell, district }) =
                                    (index, change)
                                {
                                    if let Some(old) = cell_districts.remove(cell) {
                                        cells_in.remove((*cell, old));
                                    }
                                    if let Some(d) = district {
                                        cell_districts.insert(*cell, *d);
                                        cells_in.insert((*cell, *d));
                                    }
                                }
                            }
                        }
                        Command::Shutdown => {
                            running = false;
                            break;
                        }
                        Command::Advance(clock) => {
                            let next = clock.saturating_add(1);
                            if next > *input.time() {
                                input.advance_to(next);
                                control_in.advance_to(next);
                                control_in.flush();
                                cells_in.advance_to(next);
                                cells_in.flush();
                            }
                        }
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    running = false;
                    break;
                }
            }
        }
        if handled > 0 {
            // The input handle buffers until flushed; hand everything over
            // now rather than at the next clock advance.
            input.flush();
            control_in.flush();
        }
        let park = if handled == 0 {
            Some(Duration::from_millis(100))
        } else {
            Some(Duration::ZERO)
        };
        worker.step_or_park(park);
        let frontier = probe.with_frontier(|f| f.first().copied().unwrap_or(Time::MAX));
        if frontier != reported {
            reported = frontier;
            if report
                .send(WorkerReport::Frontier(index, frontier))
                .is_err()
            {
                break;
            }
        }
    }
    // Closing the inputs lets every pending window update through; step
    // until the dataflow is done so its last changes are reported before
    // this worker says it exited.
    drop(input);
    drop(control_in);
    drop(cells_in);
    while !probe.done() {
        worker.step();
    }
    let _ = report.send(WorkerReport::Frontier(index, Time::MAX));
    let _ = report.send(WorkerReport::Exited);
}

/// Collects worker reports and releases complete times in order.
fn merge_outputs(
    workers: usize,
    reports: std_mpsc::Receiver<WorkerReport>,
    out: std_mpsc::Sender<EngineOutput>,
    progress: Arc<[AtomicU64]>,
) {
    let mut frontiers = vec![0; workers];
    let mut pending: BTreeMap<Time, Vec<(KeyedAlert, isize)>> = BTreeMap::new();
    let mut released = 0;
    let mut exited = 0;
    while let Ok(report) = reports.recv() {
        match report {
            WorkerReport::Updates(updates) => {
                for (data, time, diff) in updates {
                    pending.entry(time).or_default().push((data, diff));
                }
            }
            WorkerReport::Frontier(w, f) => {
                frontiers[w] = f;
                progress[w].store(f, Ordering::Relaxed);
                let through = frontiers.iter().copied().min().unwrap_or(0);
                if through > released {
                    while let Some(entry) = pending.first_entry() {
                        if *entry.key() >= through {
                            break;
                        }
                        let time = *entry.key();
                        let mut updates = entry.remove();
                        differential_dataflow::consolidation::consolidate(&mut updates);
                        if updates.is_empty() {
                            continue;
                        }
                        let updates = updates
                            .into_iter()
                            .map(|(((rule, key), row), diff)| AlertUpdate {
                                rule,
                                key,
                                row,
                                diff,
                            })
                            .collect();
                        if out.send(EngineOutput::Changes { time, updates }).is_err() {
                            return;
                        }
                    }
                    released = through;
                    if out.send(EngineOutput::Complete { through }).is_err() {
                        return;
                    }
                }
            }
            WorkerReport::Exited => {
                exited += 1;
                if exited == workers {
                    break;
                }
            }
        }
    }
    let _ = out.send(EngineOutput::Stopped {
        reason: "workers exited".into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each worker's frontier follows the clock, and the engine reports it.
    #[test]
    fn worker_frontiers_follow_the_clock() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let config = EngineConfig {
                workers: 2,
                ..EngineConfig::default()
            };
            let (engine, out) = Engine::start(config, 1_000).expect("engine");
            assert_eq!(engine.worker_frontiers().len(), 2);
            engine.advance(5_000).await.expect("advance");
            loop {
                match out
                    .recv_timeout(Duration::from_secs(30))
                    .expect("engine output")
                {
                    EngineOutput::Complete { through } if through > 5_000 => break,
                    EngineOutput::Stopped { reason } => panic!("engine stopped: {reason}"),
                    _ => {}
                }
            }
            // Every worker reported before the merger released the time.
            for f in engine.worker_frontiers() {
                assert!(f > 5_000 && f < Time::MAX, "frontier {f}");
            }
            engine.shutdown().await;
            // The merger has taken every worker's last report once it says
            // the workers stopped.
            while !matches!(
                out.recv_timeout(Duration::from_secs(30)),
                Ok(EngineOutput::Stopped { .. }) | Err(_)
            ) {}
            assert!(engine.worker_frontiers().iter().all(|f| *f == Time::MAX));
        });
    }
}
