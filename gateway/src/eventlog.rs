//! The durable event log: every accepted batch of events is appended here
//! before the ingest request that carried it is answered, so that a restart
//! can re-deliver the retained events to the engine at the clock at which
//! they first arrived.
//!
//! The log lives in `DIR/log/` as segment files named after the number of
//! their first batch (`0000000000000001.ndjson`), rolled at a configurable
//! size. A batch is one header line `{"batch":N,"clock":C,"count":K}`
//! followed by its K events as NDJSON lines in the ingest format
//! ([`Event::write_json`]), so the files can be read, grepped and replayed
//! with ordinary tools.
//!
//! Appends go through one writer thread that practises group commit: it
//! takes every batch queued while it was busy, writes them with one
//! `write`, syncs once (per [`SyncPolicy`]) and then completes all their
//! futures. Many concurrent ingest requests therefore share one `fdatasync`.
//!
//! This module knows events and files; it knows nothing of the engine, HTTP
//! or the alert book. One process owns a log directory at a time.

use jingzhi_rules::event::{parse_line, Event, ParseContext};
use jingzhi_rules::space::Grid;
use serde::Deserialize;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Segments are rolled when the next batch would take them past this size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// When appended batches are forced to stable storage.
///
/// "Process crash" means the `jingzhi` process dies (panic, `kill -9`, OOM
/// killer) while the machine keeps running: whatever was handed to the
/// kernel with `write` survives in the page cache and reaches the disk
/// later. "Power loss" also covers a kernel crash or a VM being reset:
/// only what was synced survives.
///
/// Under every policy a segment is synced when it is sealed (rolled) and
/// when the log is dropped cleanly, and a failed write or sync stops the
/// log: every later append fails (a failed `fsync` leaves the page cache in
/// an unknown state, so retrying it could report success for lost data).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Each group is written and `fdatasync`ed before its appends complete.
    /// An acknowledged batch survives a process crash and a power loss.
    /// Costs one sync per group, shared by every batch in the group.
    Always,
    /// Appends complete once written; the writer syncs at most once per
    /// interval, and at the latest one interval after the oldest unsynced
    /// write. An acknowledged batch survives a process crash; a power loss
    /// may lose the batches acknowledged during the last interval or so.
    Interval(Duration),
    /// Appends complete once written; syncing is left to the kernel's
    /// writeback (about 30 s on Linux by default). Survives a process
    /// crash; a power loss may lose anything not yet written back.
    Never,
}

/// How to open a log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub sync: SyncPolicy,
    /// Roll to a new segment before a batch would take the current one past
    /// this many bytes (a single larger batch gets a segment of its own).
    pub segment_bytes: u64,
    /// The grid events are located on; recovery parses events against it.
    pub grid: Grid,
}

impl LogConfig {
    /// 64 MiB segments on the default grid.
    pub fn new(sync: SyncPolicy) -> LogConfig {
        LogConfig {
            sync,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            grid: Grid::default(),
        }
    }
}

/// One batch as it was appended.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedBatch {
    /// Batch numbers start at 1 and have no gaps.
    pub batch: u64,
    /// The clock passed to [`EventLog::append`].
    pub clock: u64,
    pub events: Vec<Event>,
}

/// The unfinished batch cut off the end of the log at recovery: it was
/// being written when the process died, so it was never acknowledged.
/// (Under [`SyncPolicy::Interval`] and [`SyncPolicy::Never`] a power loss
/// can also take acknowledged batches with it; see [`SyncPolicy`].)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    /// Where the file was truncated: the start of the unfinished batch.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Complete event lines of the unfinished batch that were removed.
    pub events: usize,
}

/// What [`EventLog::open`] found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovery {
    /// The retained batches, oldest first, to be re-delivered in order.
    pub batches: Vec<LoggedBatch>,
    /// The unfinished last batch, if one was cut off.
    pub torn: Option<TornTail>,
    /// Segment files read.
    pub segments: usize,
    /// Bytes on disk after recovery.
    pub bytes: u64,
}

impl Recovery {
    /// Events in the retained batches.
    pub fn events(&self) -> usize {
        self.batches.iter().map(|b| b.events.len()).sum()
    }
}

/// What [`EventLog::trim`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrimOutcome {
    pub segments: usize,
    pub bytes: u64,
}

/// Counters for metrics, updated by the log and read by anyone.
#[derive(Debug, Default)]
pub struct LogMetrics {
    /// Bytes written since open.
    pub bytes_written: AtomicU64,
    /// Batches appended since open.
    pub batches: AtomicU64,
    /// Events appended since open.
    pub events: AtomicU64,
    /// Write groups (one `write` and at most one sync each) since open.
    pub groups: AtomicU64,
    /// `fdatasync` calls since open, including those that seal segments.
    pub fsyncs: AtomicU64,
    /// Bytes in the segment files now.
    pub disk_bytes: AtomicU64,
    /// Segment files now.
    pub segments: AtomicU64,
}

/// Why the log could not be opened or appended to.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "event log: {}:{line}: {reason} (byte offset {offset}). The log is damaged before its \
         end, so jingzhi will not guess what to drop; to start anyway, move this segment and \
         every older one out of the log directory, or, if it is the newest, truncate it at that \
         offset",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        line: u64,
        offset: u64,
        reason: String,
    },
    #[error("event log: the writer stopped after a failure and accepts no more appends: {0}")]
    Failed(String),
    #[error("event log: the writer is gone")]
    Closed,
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A handle to the log; clones share one writer, which stops (after
/// finishing queued appends and syncing) when the last handle is dropped.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    dir: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    segments: Mutex<Vec<SegmentInfo>>,
    metrics: Arc<LogMetrics>,
    /// Tests slow syncs down to make group commit observable.
    sync_delay_us: AtomicU64,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    closing: bool,
    failed: Option<String>,
}

/// Events serialised for the log, waiting for their clock.
#[derive(Clone, Debug)]
pub struct SerializedBatch {
    count: usize,
    max_ts: u64,
    body: String,
}

struct Pending {
    clock: u64,
    count: usize,
    max_ts: u64,
    body: String,
    done: oneshot::Sender<Result<u64, LogError>>,
}

#[derive(Clone, Debug)]
struct SegmentInfo {
    path: PathBuf,
    bytes: u64,
    /// Newest event time and batch clock in the segment (0 when empty).
    max_ts: u64,
    max_clock: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The protected data stays consistent across a panic (every update is
    // a single assignment or push), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_name(first_batch: u64) -> String {
    format!("{first_batch:016}.ndjson")
}

fn segment_number(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".ndjson")?;
    if stem.len() == 16 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync the directory", dir))
}

impl EventLog {
    /// Opens (or creates) the log in `dir/log/` with 64 MiB segments on the
    /// default grid, recovering what is there. See [`EventLog::open_with`].
    pub fn open(dir: &Path, policy: SyncPolicy) -> Result<(EventLog, Recovery), LogError> {
        EventLog::open_with(dir, LogConfig::new(policy))
    }

    /// Opens (or creates) the log in `dir/log/` and reads back every
    /// retained batch. An unfinished batch at the very end of the newest
    /// segment (the process died while writing it, so it was never
    /// acknowledged) is cut off and reported in [`Recovery::torn`]; damage
    /// anywhere else is an error naming the file and line.
    pub fn open_with(dir: &Path, config: LogConfig) -> Result<(EventLog, Recovery), LogError> {
        let log_dir = dir.join("log");
        fs::create_dir_all(&log_dir).map_err(io_error("create", &log_dir))?;
        let mut numbered = Vec::new();
        for entry in fs::read_dir(&log_dir).map_err(io_error("list", &log_dir))? {
            let entry = entry.map_err(io_error("list", &log_dir))?;
            if let Some(n) = entry.file_name().to_str().and_then(segment_number) {
                numbered.push((n, entry.path()));
            }
        }
        numbered.sort();

        // Events were validated on the way in; only the grid can refuse
        // them now, so any event time is accepted.
        let ctx = ParseContext::new(config.grid.clone(), u64::MAX, 0);
        let mut recovery = Recovery {
            segments: numbered.len(),
            ..Recovery::default()
        };
        let mut infos = Vec::with_capacity(numbered.len());
        let mut next_batch = numbered.first().map_or(1, |(n, _)| *n);
        for (i, (number, path)) in numbered.iter().enumerate() {
            if *number != next_batch {
                return Err(LogError::Corrupt {
                    path: path.clone(),
                    line: 1,
                    offset: 0,
                    reason: format!(
                        "the segment should start at batch {next_batch}, but its name says {number}"
                    ),
                });
            }
            let last = i + 1 == numbered.len();
            let bytes = fs::read(path).map_err(io_error("read", path))?;
            let scan = scan_segment(path, &bytes, next_batch, last, &ctx)?;
            next_batch += scan.batches.len() as u64;
            let mut size = bytes.len() as u64;
            if let Some(torn) = scan.torn {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_error("open", path))?;
                file.set_len(torn.offset)
                    .and_then(|()| file.sync_all())
                    .map_err(io_error("truncate the unfinished batch of", path))?;
                size = torn.offset;
                recovery.torn = Some(torn);
            }
            infos.push(SegmentInfo {
                path: path.clone(),
                bytes: size,
                max_ts: scan.max_ts,
                max_clock: scan.max_clock,
            });
            recovery.batches.extend(scan.batches);
        }

        let (file, path, size) = match infos.last() {
            Some(active) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&active.path)
                    .map_err(io_error("open", &active.path))?;
                (file, active.path.clone(), active.bytes)
            }
            None => {
                let path = log_dir.join(segment_name(next_batch));
                let file = OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_error("create", &path))?;
                sync_dir(&log_dir)?;
                infos.push(SegmentInfo {
                    path: path.clone(),
                    bytes: 0,
                    max_ts: 0,
                    max_clock: 0,
                });
                (file, path, 0)
            }
        };
        recovery.bytes = infos.iter().map(|s| s.bytes).sum();

        let metrics = Arc::new(LogMetrics::default());
        metrics.disk_bytes.store(recovery.bytes, Ordering::Relaxed);
        metrics
            .segments
            .store(infos.len() as u64, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            dir: log_dir,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            segments: Mutex::new(infos),
            metrics,
            sync_delay_us: AtomicU64::new(0),
        });
        let writer = Writer {
            shared: shared.clone(),
            sync: config.sync,
            segment_bytes: config.segment_bytes.max(1),
            file,
            path,
            size,
            next_batch,
            dirty: false,
            last_sync: Instant::now(),
            buffer: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("jingzhi-eventlog".into())
            .spawn(move || writer.run())
            .map_err(io_error("start the writer thread for", &shared.dir))?;
        let log = EventLog {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(Some(handle)),
            }),
        };
        Ok((log, recovery))
    }

    /// Queues `events` as one batch that arrived at `clock` and returns a
    /// future that resolves to the batch number once the batch is as
    /// durable as the [`SyncPolicy`] promises. The batch is queued when
    /// this is called, not when the future is first polled, so batch
    /// numbers follow call order. Serialisation happens here, on the
    /// caller's thread.
    ///
    /// An error means the batch is not known to be durable; it may still
    /// have reached the disk and be replayed after a restart.
    pub fn append(
        &self,
        clock: u64,
        events: &[Event],
    ) -> impl Future<Output = Result<u64, LogError>> + Send + 'static {
        let queued = self.enqueue(clock, events);
        async move { queued?.await.map_err(|_| LogError::Closed)? }
    }

    /// [`EventLog::append`] for threads outside the async runtime (such as
    /// the publisher thread or `spawn_blocking`); panics if called from an
    /// async task.
    pub fn append_blocking(&self, clock: u64, events: &[Event]) -> Result<u64, LogError> {
        let done = self.enqueue(clock, events)?;
        done.blocking_recv().map_err(|_| LogError::Closed)?
    }

    /// Serialises events for [`EventLog::append_serialized`]: the costly
    /// half of an append, which needs no clock and can run before the
    /// caller knows the clock the batch will carry.
    pub fn serialize(events: &[Event]) -> SerializedBatch {
        let mut body = String::with_capacity(events.len() * 160);
        let mut max_ts = 0;
        for e in events {
            e.write_json(&mut body);
            max_ts = max_ts.max(e.ts);
        }
        SerializedBatch {
            count: events.len(),
            max_ts,
            body,
        }
    }

    /// [`EventLog::append`] of a batch serialised beforehand; queued when
    /// called, so batch numbers follow call order.
    pub fn append_serialized(
        &self,
        clock: u64,
        batch: SerializedBatch,
    ) -> impl Future<Output = Result<u64, LogError>> + Send + 'static {
        let queued = self.enqueue_serialized(clock, batch);
        async move { queued?.await.map_err(|_| LogError::Closed)? }
    }

    /// Serialises and queues a batch; the receiver hears when it is durable.
    fn enqueue(
        &self,
        clock: u64,
        events: &[Event],
    ) -> Result<oneshot::Receiver<Result<u64, LogError>>, LogError> {
        self.enqueue_serialized(clock, EventLog::serialize(events))
    }

    fn enqueue_serialized(
        &self,
        clock: u64,
        batch: SerializedBatch,
    ) -> Result<oneshot::Receiver<Result<u64, LogError>>, LogError> {
        let (done, receiver) = oneshot::channel();
        let pending = Pending {
            clock,
            count: batch.count,
            max_ts: batch.max_ts,
            body: batch.body,
            done,
        };
        let shared = &self.inner.shared;
        let mut queue = lock(&shared.queue);
        if let Some(reason) = &queue.failed {
            return Err(LogError::Failed(reason.clone()));
        }
        queue.pending.push(pending);
        drop(queue);
        shared.wake.notify_one();
        Ok(receiver)
    }

    /// Deletes the oldest segments whose newest event time and batch clock
    /// are both before `horizon_clock`, stopping at the first segment that
    /// must stay (so the retained batches stay contiguous) and never
    /// touching the segment being written. Blocking (file deletions): call
    /// it from `spawn_blocking` or a plain thread.
    pub fn trim(&self, horizon_clock: u64) -> Result<TrimOutcome, LogError> {
        let shared = &self.inner.shared;
        let mut segments = lock(&shared.segments);
        let mut outcome = TrimOutcome::default();
        while segments.len() > 1 {
            let oldest = &segments[0];
            if oldest.max_ts >= horizon_clock || oldest.max_clock >= horizon_clock {
                break;
            }
            fs::remove_file(&oldest.path).map_err(io_error("delete", &oldest.path))?;
            outcome.segments += 1;
            outcome.bytes += oldest.bytes;
            shared
                .metrics
                .disk_bytes
                .fetch_sub(oldest.bytes, Ordering::Relaxed);
            shared.metrics.segments.fetch_sub(1, Ordering::Relaxed);
            segments.remove(0);
        }
        Ok(outcome)
    }

    /// Stops the writer once everything queued is written and synced (a
    /// clean shutdown). Appends after this fail. Blocking.
    pub fn close(&self) {
        let shared = &self.inner.shared;
        lock(&shared.queue).closing = true;
        shared.wake.notify_one();
        if let Some(handle) = lock(&self.inner.writer).take() {
            // A writer that panicked has already failed its appends.
            let _ = handle.join();
        }
    }

    /// The log's counters, to be read by the metrics exporter.
    pub fn metrics(&self) -> Arc<LogMetrics> {
        self.inner.shared.metrics.clone()
    }

    /// The directory holding the segment files (`DIR/log`).
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    #[cfg(test)]
    fn slow_down_syncs(&self, delay: Duration) {
        self.inner
            .shared
            .sync_delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        lock(&self.shared.queue).closing = true;
        self.shared.wake.notify_one();
        if let Some(handle) = lock(&self.writer).take() {
            // A writer that panicked has already failed its appends.
            let _ = handle.join();
        }
    }
}

/// The writer thread's state: the active segment and what is unsynced.
struct Writer {
    shared: Arc<Shared>,
    sync: SyncPolicy,
    segment_bytes: u64,
    file: File,
    path: PathBuf,
    size: u64,
    next_batch: u64,
    /// Written to the active segment since its last sync.
    dirty: bool,
    last_sync: Instant,
    buffer: Vec<u8>,
}

/// Fails the log if the writer thread unwinds, so that appends queued
/// then or later fail instead of waiting forever.
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let pending = {
                let mut queue = lock(&self.0.queue);
                queue.failed = Some("the writer thread panicked".into());
                std::mem::take(&mut queue.pending)
            };
            // Dropping the senders completes their futures with `Closed`.
            drop(pending);
        }
    }
}

impl Writer {
    fn run(mut self) {
        let _fail_on_panic = FailOnPanic(self.shared.clone());
        loop {
            let (group, closing) = self.next_group();
            if !group.is_empty() {
                if let Err(reason) = self.commit(group) {
                    self.fail(reason);
                    return;
                }
            }
            let sync_due = match self.sync {
                SyncPolicy::Interval(every) => self.dirty && self.last_sync.elapsed() >= every,
                SyncPolicy::Always | SyncPolicy::Never => false,
            };
            if sync_due || (closing && self.dirty) {
                if let Err(reason) = self.sync_active() {
                    self.fail(reason);
                    return;
                }
            }
            if closing {
                return;
            }
        }
    }

    /// Waits for work: queued batches, closing, or an interval sync due.
    fn next_group(&self) -> (Vec<Pending>, bool) {
        let mut queue = lock(&self.shared.queue);
        loop {
            if !queue.pending.is_empty() || queue.closing {
                return (std::mem::take(&mut queue.pending), queue.closing);
            }
            let wait = match self.sync {
                SyncPolicy::Interval(every) if self.dirty => {
                    let left = every.saturating_sub(self.last_sync.elapsed());
                    if left.is_zero() {
                        return (Vec::new(), false);
                    }
                    Some(left)
                }
                _ => None,
            };
            queue = match wait {
                Some(left) => {
                    self.shared
                        .wake
                        .wait_timeout(queue, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self
                    .shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Writes a group, syncs it if the policy says so, completes it.
    fn commit(&mut self, group: Vec<Pending>) -> Result<(), String> {
        let mut numbers = Vec::with_capacity(group.len());
        let mut group_max_ts = 0;
        let mut group_max_clock = 0;
        let mut events = 0;
        self.buffer.clear();
        let outcome = (|| -> Result<(), String> {
            for p in &group {
                let header = format!(
                    "{{\"batch\":{},\"clock\":{},\"count\":{}}}\n",
                    self.next_batch, p.clock, p.count
                );
                let len = (header.len() + p.body.len()) as u64;
                let used = self.size + self.buffer.len() as u64;
                if used > 0 && used + len > self.segment_bytes {
                    self.flush_buffer(group_max_ts, group_max_clock)?;
                    (group_max_ts, group_max_clock) = (0, 0);
                    self.roll()?;
                }
                self.buffer.extend_from_slice(header.as_bytes());
                self.buffer.extend_from_slice(p.body.as_bytes());
                group_max_ts = group_max_ts.max(p.max_ts);
                group_max_clock = group_max_clock.max(p.clock);
                events += p.count;
                numbers.push(self.next_batch);
                self.next_batch += 1;
            }
            self.flush_buffer(group_max_ts, group_max_clock)?;
            if self.sync == SyncPolicy::Always {
                self.sync_active()?;
            }
            Ok(())
        })();
        if let Err(reason) = outcome {
            for p in group {
                let _ = p.done.send(Err(LogError::Failed(reason.clone())));
            }
            return Err(reason);
        }
        let m = &self.shared.metrics;
        m.groups.fetch_add(1, Ordering::Relaxed);
        m.batches.fetch_add(numbers.len() as u64, Ordering::Relaxed);
        m.events.fetch_add(events as u64, Ordering::Relaxed);
        for (p, n) in group.into_iter().zip(numbers) {
            // The caller may have stopped waiting; the batch is logged anyway.
            let _ = p.done.send(Ok(n));
        }
        Ok(())
    }

    /// Writes the buffer to the active segment and records what it holds.
    fn flush_buffer(&mut self, max_ts: u64, max_clock: u64) -> Result<(), String> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buffer)
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        let written = self.buffer.len() as u64;
        self.buffer.clear();
        self.size += written;
        self.dirty = true;
        let m = &self.shared.metrics;
        m.bytes_written.fetch_add(written, Ordering::Relaxed);
        m.disk_bytes.fetch_add(written, Ordering::Relaxed);
        if let Some(active) = lock(&self.shared.segments).last_mut() {
            active.bytes = self.size;
            active.max_ts = active.max_ts.max(max_ts);
            active.max_clock = active.max_clock.max(max_clock);
        }
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), String> {
        let delay = self.shared.sync_delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        self.file
            .sync_data()
            .map_err(|e| format!("syncing {}: {e}", self.path.display()))?;
        self.shared.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Seals the active segment (synced whatever the policy, so that only
    /// the newest segment can ever end in an unfinished batch) and starts
    /// the next one, named after the next batch.
    fn roll(&mut self) -> Result<(), String> {
        if self.dirty {
            self.sync_active()?;
        }
        let path = self.shared.dir.join(segment_name(self.next_batch));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        sync_dir(&self.shared.dir).map_err(|e| e.to_string())?;
        self.file = file;
        self.path = path.clone();
        self.size = 0;
        lock(&self.shared.segments).push(SegmentInfo {
            path,
            bytes: 0,
            max_ts: 0,
            max_clock: 0,
        });
        self.shared.metrics.segments.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Stops the log: fails what is queued now and everything appended
    /// later.
    fn fail(&self, reason: String) {
        let pending = {
            let mut queue = lock(&self.shared.queue);
            queue.failed = Some(reason.clone());
            std::mem::take(&mut queue.pending)
        };
        for p in pending {
            let _ = p.done.send(Err(LogError::Failed(reason.clone())));
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    batch: u64,
    clock: u64,
    count: usize,
}

/// What reading one segment found.
struct SegmentScan {
    batches: Vec<LoggedBatch>,
    torn: Option<TornTail>,
    max_ts: u64,
    max_clock: u64,
}

/// Why a batch could not be read.
enum Damage {
    /// The file ends inside the batch: the normal result of a crash while
    /// writing.
    Unfinished,
    /// A line of bytes that were never text we wrote (NULs, invalid
    /// UTF-8): what a power loss leaves in blocks allocated but not
    /// written.
    Garbage(String),
    /// Well-formed text that is not what belongs here. Never guessed away.
    Invalid(String),
}

fn next_line(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    let rest = &bytes[pos..];
    rest.iter().position(|&b| b == b'\n').map(|i| &rest[..i])
}

fn is_garbage(line: &[u8]) -> bool {
    line.contains(&0) || std::str::from_utf8(line).is_err()
}

fn scan_segment(
    path: &Path,
    bytes: &[u8],
    first_batch: u64,
    last_segment: bool,
    ctx: &ParseContext,
) -> Result<SegmentScan, LogError> {
    let mut scan = SegmentScan {
        batches: Vec::new(),
        torn: None,
        max_ts: 0,
        max_clock: 0,
    };
    let mut pos = 0;
    let mut line_no: u64 = 0;
    let mut expected = first_batch;
    while pos < bytes.len() {
        let batch_start = pos;
        let batch_line = line_no + 1;
        let mut events = Vec::new();
        // Reads one batch; on damage, says where (line number, offset).
        let read = (|| -> Result<LoggedBatch, (u64, usize, Damage)> {
            let Some(line) = next_line(bytes, pos) else {
                return Err((line_no + 1, pos, Damage::Unfinished));
            };
            line_no += 1;
            let header: Header = match serde_json::from_slice(line) {
                Ok(h) => h,
                Err(_) if is_garbage(line) => {
                    return Err((line_no, pos, Damage::Garbage("unreadable bytes".into())))
                }
                Err(e) => {
                    return Err((
                        line_no,
                        pos,
                        Damage::Invalid(format!("expected the header of batch {expected}: {e}")),
                    ))
                }
            };
            if header.batch != expected {
                return Err((
                    line_no,
                    pos,
                    Damage::Invalid(format!(
                        "expected batch {expected}, found batch {}",
                        header.batch
                    )),
                ));
            }
            pos += line.len() + 1;
            for _ in 0..header.count {
                let Some(line) = next_line(bytes, pos) else {
                    return Err((line_no + 1, pos, Damage::Unfinished));
                };
                line_no += 1;
                match parse_line(line, ctx) {
                    Ok(event) => events.push(event),
                    Err(_) if is_garbage(line) => {
                        return Err((line_no, pos, Damage::Garbage("unreadable bytes".into())))
                    }
                    Err(e) => {
                        return Err((
                            line_no,
                            pos,
                            Damage::Invalid(format!(
                                "event {} of batch {expected}: {e}",
                                events.len() + 1
                            )),
                        ))
                    }
                }
                pos += line.len() + 1;
            }
            Ok(LoggedBatch {
                batch: header.batch,
                clock: header.clock,
                events: std::mem::take(&mut events),
            })
        })();
        match read {
            Ok(batch) => {
                scan.max_clock = scan.max_clock.max(batch.clock);
                for e in &batch.events {
                    scan.max_ts = scan.max_ts.max(e.ts);
                }
                scan.batches.push(batch);
                expected += 1;
            }
            Err((line, offset, damage)) => {
                let torn = last_segment
                    && match &damage {
                        Damage::Unfinished => true,
                        // Garbage is a torn tail only if no later batch
                        // survived: otherwise acknowledged data follows it.
                        Damage::Garbage(_) => !has_later_header(bytes, offset, expected),
                        Damage::Invalid(_) => false,
                    };
                if torn {
                    scan.torn = Some(TornTail {
                        file: path.to_path_buf(),
                        offset: batch_start as u64,
                        bytes: (bytes.len() - batch_start) as u64,
                        events: events.len(),
                    });
                    break;
                }
                let reason = match damage {
                    Damage::Unfinished => format!(
                        "the file ends inside batch {expected} (line {batch_line} starts it), \
                         but it is not the newest segment"
                    ),
                    Damage::Garbage(r) => format!("{r} inside batch {expected}"),
                    Damage::Invalid(r) => r,
                };
                return Err(LogError::Corrupt {
                    path: path.to_path_buf(),
                    line,
                    offset: offset as u64,
                    reason,
                });
            }
        }
    }
    Ok(scan)
}

/// Whether a complete header of a batch numbered `batch` or later follows
/// `from`.
fn has_later_header(bytes: &[u8], from: usize, batch: u64) -> bool {
    bytes[from..]
        .split(|&b| b == b'\n')
        .skip(1)
        .any(|line| serde_json::from_slice::<Header>(line).is_ok_and(|h| h.batch >= batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jingzhi_rules::event::{Body, Incident, Location};
    use jingzhi_rules::sym::Sym;

    fn sensor(ts: u64, value: f64) -> Event {
        let ctx = ParseContext::new(Grid::default(), u64::MAX, 0);
        let line = format!(
            r#"{{"stream":"sensor","ts":{ts},"sensor_id":"wl-0042","kind":"water_level","cell":5050,"value":{value},"unit":"m"}}"#
        );
        parse_line(line.as_bytes(), &ctx).expect("a valid sensor line")
    }

    fn incident(ts: u64, description: &str) -> Event {
        Event {
            ts,
            location: Location::Cell(4242),
            body: Body::Incident(Incident {
                incident_id: "110-20260101-0001".into(),
                kind: Sym::intern("flood").unwrap(),
                severity: Some(3),
                segment_id: None,
                description: Some(description.into()),
            }),
        }
    }

    fn batch_of(ts: u64, n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| sensor(ts + i as u64, 0.1 * i as f64))
            .collect()
    }

    fn config(sync: SyncPolicy, segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            ..LogConfig::new(sync)
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir.join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn append_then_reopen_returns_every_batch_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let first = vec![
            sensor(1_767_225_600_000, 0.31),
            incident(1_767_225_601_000, "积水约30厘米\n\"引号\""),
        ];
        let second = batch_of(1_767_225_602_000, 3);
        {
            let (log, recovery) = EventLog::open(dir.path(), SyncPolicy::Always).unwrap();
            assert_eq!(
                recovery,
                Recovery {
                    segments: 0,
                    ..Recovery::default()
                }
            );
            assert_eq!(
                rt.block_on(log.append(1_767_225_599_000, &first)).unwrap(),
                1
            );
            assert_eq!(
                rt.block_on(log.append(1_767_225_600_500, &second)).unwrap(),
                2
            );
            assert_eq!(rt.block_on(log.append(1_767_225_600_600, &[])).unwrap(), 3);
            let m = log.metrics();
            assert_eq!(m.batches.load(Ordering::Relaxed), 3);
            assert_eq!(m.events.load(Ordering::Relaxed), 5);
            assert!(m.fsyncs.load(Ordering::Relaxed) >= 3);
        }
        let (log, recovery) = EventLog::open(dir.path(), SyncPolicy::Always).unwrap();
        assert_eq!(recovery.torn, None);
        assert_eq!(
            recovery.batches,
            vec![
                LoggedBatch {
                    batch: 1,
                    clock: 1_767_225_599_000,
                    events: first
                },
                LoggedBatch {
                    batch: 2,
                    clock: 1_767_225_600_500,
                    events: second
                },
                LoggedBatch {
                    batch: 3,
                    clock: 1_767_225_600_600,
                    events: vec![]
                },
            ]
        );
        assert_eq!(recovery.events(), 5);
        assert_eq!(
            log.metrics().disk_bytes.load(Ordering::Relaxed),
            recovery.bytes
        );
        // Numbering continues after the recovered batches.
        assert_eq!(
            log.append_blocking(1, &batch_of(1_767_225_700_000, 1))
                .unwrap(),
            4
        );
    }

    #[test]
    fn the_file_format_is_a_header_line_then_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path(), SyncPolicy::Never).unwrap();
        log.append_blocking(7, &[sensor(1_767_225_600_000, 0.5)])
            .unwrap();
        drop(log);
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 1);
        assert!(files[0].ends_with("log/0000000000000001.ndjson"));
        let text = fs::read_to_string(&files[0]).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(r#"{"batch":1,"clock":7,"count":1}"#));
        assert!(lines
            .next()
            .unwrap()
            .starts_with(r#"{"stream":"sensor","ts":1767225600000"#));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn group_commit_shares_syncs_among_queued_appends() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let (log, _) = EventLog::open(dir.path(), SyncPolicy::Always).unwrap();
        // A slow disk: while one sync runs, the others queue up.
        log.slow_down_syncs(Duration::from_millis(20));
        let events = batch_of(1_767_225_600_000, 2);
        let futures: Vec<_> = (0..200).map(|i| log.append(i, &events)).collect();
        let numbers: Vec<u64> = rt.block_on(async {
            let mut out = Vec::new();
            for f in futures {
                out.push(f.await.unwrap());
            }
            out
        });
        assert_eq!(numbers, (1..=200).collect::<Vec<u64>>());
        let fsyncs = log.metrics().fsyncs.load(Ordering::Relaxed);
        assert!(fsyncs <= 10, "200 queued appends took {fsyncs} syncs");
    }

    #[test]
    fn concurrent_tasks_complete_with_few_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let (log, _) = EventLog::open(dir.path(), SyncPolicy::Always).unwrap();
        log.slow_down_syncs(Duration::from_millis(5));
        let tasks = 32;
        let per_task = 10;
        let mut numbers: Vec<u64> = rt.block_on(async {
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut mine = Vec::new();
                        for i in 0..per_task {
                            let events = batch_of(1_767_225_600_000 + t * 1000 + i, 1);
                            mine.push(log.append(t * 100 + i, &events).await.unwrap());
                        }
                        mine
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.await.unwrap());
            }
            all
        });
        numbers.sort();
        let total = tasks * per_task;
        assert_eq!(numbers, (1..=total).collect::<Vec<u64>>());
        let fsyncs = log.metrics().fsyncs.load(Ordering::Relaxed);
        let groups = log.metrics().groups.load(Ordering::Relaxed);
        assert!(
            fsyncs <= total / 4,
            "{total} appends from {tasks} tasks took {fsyncs} syncs"
        );
        assert_eq!(fsyncs, groups);
        drop(log);
        let (_, recovery) = EventLog::open(dir.path(), SyncPolicy::Always).unwrap();
        assert_eq!(recovery.batches.len() as u64, total);
    }

    #[test]
    fn interval_and_never_acknowledge_after_write() {
        for policy in [
            SyncPolicy::Interval(Duration::from_millis(50)),
            SyncPolicy::Never,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (log, _) = EventLog::open(dir.path(), policy).unwrap();
            for i in 0..20 {
                log.append_blocking(i, &batch_of(1_767_225_600_000 + i, 1))
                    .unwrap();
            }
            let fsyncs = log.metrics().fsyncs.load(Ordering::Relaxed);
            assert!(
                fsyncs <= 2,
                "{policy:?} synced {fsyncs} times for 20 appends"
            );
            if policy != SyncPolicy::Never {
                // The interval sync happens without further appends.
                std::thread::sleep(Duration::from_millis(200));
                assert!(log.metrics().fsyncs.load(Ordering::Relaxed) >= 1);
            }
            drop(log);
            let (_, recovery) = EventLog::open(dir.path(), policy).unwrap();
            assert_eq!(recovery.batches.len(), 20);
        }
    }

    #[test]
    fn segments_roll_at_the_configured_size() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open_with(dir.path(), config(SyncPolicy::Never, 1024)).unwrap();
        for i in 0..30 {
            log.append_blocking(i, &batch_of(1_767_225_600_000 + i * 1000, 2))
                .unwrap();
        }
        let segments = log.metrics().segments.load(Ordering::Relaxed);
        drop(log);
        let files = segment_files(dir.path());
        assert!(
            files.len() > 3,
            "expected several segments, got {}",
            files.len()
        );
        assert_eq!(files.len() as u64, segments);
        for f in &files {
            assert!(fs::metadata(f).unwrap().len() <= 1024);
        }
        let (_, recovery) =
            EventLog::open_with(dir.path(), config(SyncPolicy::Never, 1024)).unwrap();
        let numbers: Vec<u64> = recovery.batches.iter().map(|b| b.batch).collect();
        assert_eq!(numbers, (1..=30).collect::<Vec<u64>>());
    }

    /// Writes five batches and returns the bytes of the only segment and
    /// the offset where the last batch starts.
    fn five_batches(dir: &Path) -> (PathBuf, Vec<u8>, usize) {
        let (log, _) = EventLog::open(dir, SyncPolicy::Always).unwrap();
        for i in 0..5u64 {
            let mut events = batch_of(1_767_225_600_000 + i * 1000, 2);
            events.push(incident(1_767_225_600_500 + i * 1000, "京A12345追尾"));
            log.append_blocking(1_767_225_600_000 + i, &events).unwrap();
        }
        drop(log);
        let path = segment_files(dir).remove(0);
        let bytes = fs::read(&path).unwrap();
        let last_start = bytes
            .windows(10)
            .rposition(|w| w == b"{\"batch\":5")
            .unwrap();
        (path, bytes, last_start)
    }

    /// A scratch directory in memory where there is one: cutting a torn
    /// tail syncs the file, and this test does it hundreds of times.
    fn memory_backed_tempdir() -> tempfile::TempDir {
        let shm = Path::new("/dev/shm");
        shm.is_dir()
            .then(|| tempfile::tempdir_in(shm).ok())
            .flatten()
            .unwrap_or_else(|| tempfile::tempdir().unwrap())
    }

    #[test]
    fn a_torn_last_batch_is_cut_off_at_every_offset() {
        let source = tempfile::tempdir().unwrap();
        let (path, bytes, last_start) = five_batches(source.path());
        let name = path.file_name().unwrap();
        for cut in last_start..=bytes.len() {
            let dir = memory_backed_tempdir();
            fs::create_dir(dir.path().join("log")).unwrap();
            let copy = dir.path().join("log").join(name);
            fs::write(&copy, &bytes[..cut]).unwrap();
            let (log, recovery) = EventLog::open(dir.path(), SyncPolicy::Never).unwrap();
            if cut == bytes.len() {
                assert_eq!(recovery.torn, None);
                assert_eq!(recovery.batches.len(), 5);
                continue;
            }
            assert_eq!(recovery.batches.len(), 4, "cut at {cut}");
            if cut == last_start {
                // The file ends cleanly after batch 4: nothing to cut.
                assert_eq!(recovery.torn, None);
                continue;
            }
            let torn = recovery.torn.clone().expect("a torn tail");
            assert_eq!(torn.offset, last_start as u64);
            assert_eq!(torn.bytes, (cut - last_start) as u64);
            let header_len = bytes[last_start..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap()
                + 1;
            let complete_lines = bytes[last_start..cut]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            let want_events = if cut - last_start >= header_len {
                complete_lines - 1
            } else {
                0
            };
            assert_eq!(torn.events, want_events, "cut at {cut}");
            assert_eq!(fs::metadata(&copy).unwrap().len(), last_start as u64);
            // The unacknowledged batch's number is used again.
            let batch = log.append_blocking(9, &batch_of(1_767_225_700_000, 1));
            assert_eq!(batch.unwrap(), 5, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_after_the_last_batch_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes, _) = five_batches(dir.path());
        let len = bytes.len();
        // What a power loss can leave: blocks allocated but never written.
        bytes.extend_from_slice(&[0u8; 700]);
        bytes[len + 300] = b'\n';
        fs::write(&path, &bytes).unwrap();
        let (_, recovery) = EventLog::open(dir.path(), SyncPolicy::Always).unwrap();
        assert_eq!(recovery.batches.len(), 5);
        assert_eq!(recovery.torn.unwrap().bytes, 700);
    }

    #[test]
    fn damage_before_the_end_is_refused_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes, _) = five_batches(dir.path());
        let text = String::from_utf8(bytes).unwrap();
        // Line 6 is the first event of batch 2 (each batch: header + 3 events).
        let mut lines: Vec<&str> = text.lines().collect();
        lines[5] = r#"{"stream":"sensor","ts":"yesterday"}"#;
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let err = EventLog::open(dir.path(), SyncPolicy::Always)
            .err()
            .unwrap();
        let message = err.to_string();
        assert!(
            matches!(err, LogError::Corrupt { line: 6, .. }),
            "{message}"
        );
        assert!(message.contains("0000000000000001.ndjson:6"), "{message}");

        // Garbage followed by an intact later batch is not a torn tail either.
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[5] = "\0\0\0\0".to_string();
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        let err = EventLog::open(dir.path(), SyncPolicy::Always)
            .err()
            .unwrap();
        assert!(matches!(err, LogError::Corrupt { line: 6, .. }), "{err}");
    }

    #[test]
    fn an_unfinished_batch_in_an_older_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = EventLog::open_with(dir.path(), config(SyncPolicy::Never, 600)).unwrap();
            for i in 0..10 {
                log.append_blocking(i, &batch_of(1_767_225_600_000 + i, 2))
                    .unwrap();
            }
        }
        let files = segment_files(dir.path());
        assert!(files.len() >= 2);
        let first = fs::read(&files[0]).unwrap();
        fs::write(&files[0], &first[..first.len() - 5]).unwrap();
        let err = EventLog::open_with(dir.path(), config(SyncPolicy::Never, 600))
            .err()
            .unwrap();
        assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("0000000000000001.ndjson"), "{err}");
    }

    #[test]
    fn trim_deletes_old_segments_but_never_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = || config(SyncPolicy::Never, 700);
        let base = 1_767_225_600_000u64;
        let (log, _) = EventLog::open_with(dir.path(), cfg()).unwrap();
        // Batch i arrives at clock base + i s with events at the same time.
        for i in 0..20u64 {
            log.append_blocking(base + i * 1000, &batch_of(base + i * 1000, 2))
                .unwrap();
        }
        let before = segment_files(dir.path()).len();
        assert!(before >= 4);
        let disk_before = log.metrics().disk_bytes.load(Ordering::Relaxed);

        assert_eq!(log.trim(base).unwrap(), TrimOutcome::default());
        let outcome = log.trim(base + 10_000).unwrap();
        assert!(outcome.segments >= 1);
        assert_eq!(
            log.metrics().disk_bytes.load(Ordering::Relaxed),
            disk_before - outcome.bytes
        );
        // Everything is older than this, yet the active segment stays.
        log.trim(u64::MAX).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(log.metrics().segments.load(Ordering::Relaxed), 1);
        let next = log
            .append_blocking(base + 30_000, &batch_of(base + 30_000, 1))
            .unwrap();
        drop(log);

        let (_, recovery) = EventLog::open_with(dir.path(), cfg()).unwrap();
        let numbers: Vec<u64> = recovery.batches.iter().map(|b| b.batch).collect();
        assert_eq!(numbers.last(), Some(&next));
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn a_segment_with_a_recent_event_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let base = 1_767_225_600_000u64;
        let (log, _) = EventLog::open_with(dir.path(), config(SyncPolicy::Never, 500)).unwrap();
        // An old clock but a far-future event time: the segment must stay.
        log.append_blocking(base, &[sensor(base + 3_600_000, 1.0)])
            .unwrap();
        for i in 1..10u64 {
            log.append_blocking(base + i, &batch_of(base + i, 2))
                .unwrap();
        }
        assert_eq!(log.trim(base + 60_000).unwrap().segments, 0);
    }

    #[test]
    fn appends_after_a_write_failure_fail() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open_with(dir.path(), config(SyncPolicy::Never, 300)).unwrap();
        assert_eq!(
            log.append_blocking(1, &batch_of(1_767_225_600_000, 1))
                .unwrap(),
            1
        );
        // The next roll must create segment 2; a directory in its place
        // makes that fail (whatever the permissions, even as root).
        fs::create_dir(dir.path().join("log").join(segment_name(2))).unwrap();
        let err = log
            .append_blocking(2, &batch_of(1_767_225_600_000, 3))
            .unwrap_err();
        assert!(matches!(err, LogError::Failed(_)), "{err}");
        assert!(err.to_string().contains("0000000000000002.ndjson"), "{err}");
        let err = log
            .append_blocking(3, &batch_of(1_767_225_600_000, 1))
            .unwrap_err();
        assert!(matches!(err, LogError::Failed(_)), "{err}");
    }
}
