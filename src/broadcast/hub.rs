//! One shared program per route: started by the first client (or at start-up), its output
//! framed once per message and published to the bus, client input merged onto its stdin,
//! stopped with the termination ladder when its last client has gone (after `--lingerms`)
//! or the daemon stops, and every client told how it ended.

use super::bus::{Batch, Bus, Close, Input, InputEvent};
use super::queue::Subscription;
use crate::config::{BroadcastInput, Linger};
use crate::environment::Entry;
use crate::forks::{ForkLimiter, ForkSlot};
use crate::logging::Scope;
use crate::process::lines::json_string;
use crate::process::{self, ladder, Program};
use crate::state::{SessionGuard, SessionTracker};
use crate::ws::output::{log_stderr, readable, Source};
use crate::ws::prepared::PreparedFrames;
use crate::ws::session::{exit_close, OUTPUT_GRACE};
use bytes::BytesMut;
use futures_util::FutureExt;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{watch, Notify};

/// Client input gathered into one stdin write, up to this many bytes.
const INPUT_BATCH: usize = 64 * 1024;

/// What a hub runs.
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Its whole environment (the server's part of the CGI environment).
    pub env: Vec<Entry>,
}

/// Settings every hub shares.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// `--binary`: one binary message per read instead of a text message per line.
    pub binary: bool,
    /// `--passstderr`: stderr lines go to clients too, both streams in JSON envelopes.
    pub pass_stderr: bool,
    /// `--maxframesize`: longest output line sent as one message.
    pub max_line: Option<usize>,
    /// `--closems`.
    pub close_ms: u64,
    /// `--lingerms` / `--prestart`.
    pub linger: Linger,
    /// `--replay`.
    pub replay: usize,
    /// `--broadcastinput`.
    pub input: BroadcastInput,
    /// `--unbuffered`: which output streams are terminals.
    pub ptys: process::pty::Streams,
    /// Most messages published at once: half of `--maxqueue`, so that a client whose
    /// writer keeps up never has more than `--maxqueue` waiting.
    pub max_batch: usize,
    /// `--cluster`: the program is started and stopped by the cluster's runner claim
    /// ([`Hub::start_epoch`], [`Hub::stop_epoch`]), never by clients joining.
    pub clustered: bool,
}

/// Why a client cannot join.
#[derive(Debug)]
pub enum JoinError {
    /// `--maxforks` is reached and the program is not running.
    NoForkSlot,
    /// The program could not be started.
    Launch(String),
    /// The daemon is shutting down.
    ShuttingDown,
}

/// One route's shared program and its clients.
pub struct Hub {
    spec: ProgramSpec,
    settings: HubSettings,
    bus: Arc<dyn Bus>,
    forks: ForkLimiter,
    sessions: SessionTracker,
    shutdown: watch::Receiver<bool>,
    scope: Scope,
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    run: Option<Run>,
    members: usize,
    /// Changes whenever a client joins, so a pending linger stop knows it is stale.
    generation: u64,
    epoch: u64,
}

/// The running program, as the hub's state sees it.
struct Run {
    epoch: u64,
    stop: Arc<Notify>,
    stopping: bool,
}

/// Completes when a program started with [`Hub::start_epoch`] has ended and its clients
/// were told.
pub type RunEnded = tokio::sync::oneshot::Receiver<()>;

/// A client's membership; leaving (dropping it) may stop the program.
pub struct Member {
    hub: Arc<Hub>,
    /// The client's queue.
    pub subscription: Subscription,
    /// The epoch of the program the client joined.
    pub epoch: u64,
}

impl Member {
    /// The bus of the client's route (for its input).
    pub fn bus(&self) -> &Arc<dyn Bus> {
        self.hub.bus()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.hub.leave(&self.subscription);
    }
}

/// How the program's run came to an end.
enum Ended {
    Output,
    Stopped,
    Shutdown,
}

impl Hub {
    /// A hub for `spec`; nothing runs until a client joins or [`Hub::prestart`].
    pub fn new(
        spec: ProgramSpec,
        settings: HubSettings,
        bus: Arc<dyn Bus>,
        forks: ForkLimiter,
        sessions: SessionTracker,
        shutdown: watch::Receiver<bool>,
    ) -> Hub {
        let mut scope = Scope::new();
        scope.associate("command", spec.program.to_string_lossy().into_owned());
        Hub {
            spec,
            settings,
            bus,
            forks,
            sessions,
            shutdown,
            scope,
            state: Mutex::new(HubState::default()),
        }
    }

    /// The bus clients read from and send input through.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Keeps graceful shutdown waiting until it is dropped (the cluster's lease loop holds
    /// one while it holds the claim, so the claim is released before the daemon exits).
    pub fn session_guard(&self) -> SessionGuard {
        self.sessions.enter()
    }

    /// The settings the hub runs with.
    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a client, starting the program if it is not running. Concurrent joins start
    /// exactly one program.
    pub fn join(self: &Arc<Self>) -> Result<Member, JoinError> {
        let mut state = self.lock();
        // In a cluster a client follows whatever program runs anywhere, from now on.
        let epoch = if self.settings.clustered {
            0
        } else {
            self.ensure_running(&mut state)?
        };
        state.members += 1;
        state.generation += 1;
        let subscription = self.bus.subscribe(epoch, self.settings.replay);
        Ok(Member {
            hub: self.clone(),
            subscription,
            epoch,
        })
    }

    /// Starts the program at daemon start-up.
    pub fn prestart(self: &Arc<Self>) -> Result<(), JoinError> {
        if self.settings.clustered {
            return Ok(());
        }
        let mut state = self.lock();
        self.ensure_running(&mut state).map(|_| ())
    }

    /// Cluster: starts the program as the runner of `epoch` (the claim the cluster gave
    /// this instance). A program of an earlier epoch must have ended.
    pub fn start_epoch(self: &Arc<Self>, epoch: u64) -> Result<RunEnded, JoinError> {
        let mut state = self.lock();
        if state.run.is_some() {
            return Err(JoinError::Launch(
                "the previous program is still stopping".to_string(),
            ));
        }
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        self.spawn_run(&mut state, epoch, Some(ended_tx))?;
        Ok(ended)
    }

    /// Cluster: stops the program of `epoch` (the claim is lost or given up) with the
    /// termination ladder.
    pub fn stop_epoch(&self, epoch: u64) {
        let mut state = self.lock();
        if state.run.as_ref().is_some_and(|run| run.epoch == epoch) {
            stop_run(&mut state);
        }
    }

    /// The epoch of the running program, starting it first if needed.
    fn ensure_running(self: &Arc<Self>, state: &mut HubState) -> Result<u64, JoinError> {
        if let Some(run) = state.run.as_ref().filter(|run| !run.stopping) {
            return Ok(run.epoch);
        }
        let epoch = state.epoch + 1;
        self.spawn_run(state, epoch, None)?;
        Ok(epoch)
    }

    /// Starts the program as the run of `epoch`; `ended` is dropped when the run is over.
    fn spawn_run(
        self: &Arc<Self>,
        state: &mut HubState,
        epoch: u64,
        ended: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), JoinError> {
        if *self.shutdown.borrow() {
            return Err(JoinError::ShuttingDown);
        }
        let slot = self.forks.try_take().ok_or(JoinError::NoForkSlot)?;
        let env: Vec<(&str, &std::ffi::OsStr)> = self
            .spec
            .env
            .iter()
            .map(|entry| (entry.name.as_str(), entry.value.as_os_str()))
            .collect();
        let program = process::spawn(process::Launch {
            program: &self.spec.program,
            arg0: None,
            args: &self.spec.args,
            env,
            cwd: None,
            capture_stderr: true,
            ptys: self.settings.ptys,
        })
        .map_err(|err| {
            let mut command = self.spec.program.to_string_lossy().into_owned();
            for arg in &self.spec.args {
                command.push(' ');
                command.push_str(&arg.to_string_lossy());
            }
            JoinError::Launch(format!("Could not launch process {command} ({err})"))
        })?;
        state.epoch = epoch;
        let stop = Arc::new(Notify::new());
        state.run = Some(Run {
            epoch,
            stop: stop.clone(),
            stopping: false,
        });
        let guard = self.sessions.enter();
        let hub = self.clone();
        tokio::spawn(async move {
            hub.run(program, slot, guard, epoch, stop).await;
            drop(ended);
        });
        Ok(())
    }

    /// A client left: the program stops when nobody is left, after `--lingerms`.
    fn leave(self: &Arc<Self>, subscription: &Subscription) {
        self.bus.unsubscribe(subscription);
        let mut state = self.lock();
        state.members = state.members.saturating_sub(1);
        if state.members > 0 {
            return;
        }
        match self.settings.linger {
            Linger::Forever => {}
            Linger::For(0) => stop_run(&mut state),
            Linger::For(ms) => {
                let generation = state.generation;
                let hub = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let mut state = hub.lock();
                    if state.members == 0 && state.generation == generation {
                        stop_run(&mut state);
                    }
                });
            }
        }
    }

    /// Runs the program until it ends, is stopped, or the daemon stops; then tells every
    /// client how it ended.
    async fn run(
        self: Arc<Self>,
        program: Program,
        slot: ForkSlot,
        guard: SessionGuard,
        epoch: u64,
        stop: Arc<Notify>,
    ) {
        let mut scope = self.scope.clone();
        scope.associate("pid", program.child.id().to_string());
        scope.access("broadcast", "PROGRAM START");
        let Program {
            mut child,
            stdin,
            stdout,
            stderr,
        } = program;
        let mut stdin = stdin;
        let mut sources = vec![Source::new(stdout, "stdout")];
        let mut stderr_logger = None;
        if let Some(stderr) = stderr {
            if self.settings.pass_stderr {
                sources.push(Source::new(stderr, "stderr"));
            } else {
                stderr_logger = Some(tokio::spawn(log_stderr(
                    stderr,
                    self.settings.max_line,
                    scope.clone(),
                )));
            }
        }
        let mut shutdown = self.shutdown.clone();
        let ended = {
            let output = self.relay_output(&mut sources, epoch, &scope);
            let input = self.relay_input(&mut stdin, epoch, &scope);
            tokio::select! {
                () = output => Ended::Output,
                () = input => Ended::Output,
                () = stop.notified() => Ended::Stopped,
                () = wait_shutdown(&mut shutdown) => Ended::Shutdown,
            }
        };

        // Stop the program while still relaying what it writes meanwhile.
        let status = {
            let ladder =
                ladder::terminate(&mut child, stdin.take(), self.settings.close_ms, &scope);
            tokio::pin!(ladder);
            if matches!(ended, Ended::Output) {
                ladder.await
            } else {
                let relay = self.relay_output(&mut sources, epoch, &scope);
                tokio::pin!(relay);
                tokio::select! {
                    status = &mut ladder => {
                        let _ = tokio::time::timeout(OUTPUT_GRACE, &mut relay).await;
                        status
                    }
                    () = &mut relay => ladder.await,
                }
            }
        };
        if let Some(logger) = stderr_logger {
            let _ = tokio::time::timeout(OUTPUT_GRACE, logger).await;
        }
        let (code, reason) = match ended {
            Ended::Shutdown => (1001, String::new()),
            _ => exit_close(status.as_ref()),
        };
        let described = status
            .as_ref()
            .map_or_else(|| "unknown exit".to_string(), process::describe);
        scope.access("broadcast", &format!("PROGRAM EXIT: {described}"));
        {
            let mut state = self.lock();
            if state.run.as_ref().is_some_and(|run| run.epoch == epoch) {
                state.run = None;
            }
        }
        let _ = self.bus.finish(epoch, Close { code, reason }).await;
        drop(slot);
        drop(guard);
    }

    /// Program → bus: whatever the pipes hold is framed once, message by message, and
    /// published in batches of at most `max_batch` messages, letting the clients' writers
    /// run between two batches (so a burst is not mistaken for a slow client). Completes at
    /// end of output. Cancel-safe between batches.
    async fn relay_output(&self, sources: &mut [Source], epoch: u64, scope: &Scope) {
        loop {
            let finished = sources.iter().all(|s| s.eof);
            if let Some(batch) = self.frame(sources, finished, scope) {
                let full = batch.count() >= self.settings.max_batch;
                let _ = self.bus.publish(epoch, batch).await;
                tokio::task::yield_now().await;
                if full || finished {
                    continue;
                }
            }
            if finished {
                return;
            }
            let mut progressed = false;
            for source in sources.iter_mut().filter(|s| !s.eof) {
                progressed |= source.try_fill(scope);
            }
            if progressed {
                tokio::task::coop::consume_budget().await;
            } else {
                readable(sources).await;
            }
        }
    }

    /// Frames the complete messages buffered in `sources` (and, at the end, the
    /// unterminated rest) into one batch of at most `max_batch` messages.
    fn frame(&self, sources: &mut [Source], finished: bool, scope: &Scope) -> Option<Batch> {
        let mut out = BytesMut::new();
        let mut ends = Vec::new();
        let binary = self.settings.binary;
        let tagged = self.settings.pass_stderr && !binary;
        for source in sources.iter_mut() {
            while ends.len() < self.settings.max_batch {
                let message = if binary {
                    (!source.lines.buf.is_empty()).then(|| source.lines.buf.split())
                } else {
                    match source.lines.next_line(self.settings.max_line) {
                        Some(line) => Some(line.bytes),
                        None if finished => source.lines.take_rest().map(|rest| rest.bytes),
                        None => None,
                    }
                };
                let Some(message) = message else { break };
                if source.name == "stderr" {
                    scope.error("stderr", &String::from_utf8_lossy(&message));
                }
                if tagged {
                    let envelope = process::lines::json_envelope(source.name, &message);
                    PreparedFrames::encode_message(&mut out, false, &envelope);
                } else {
                    PreparedFrames::encode_message(&mut out, binary, &message);
                }
                ends.push(out.len());
            }
        }
        (!ends.is_empty()).then(|| Batch {
            frames: PreparedFrames::from_encoded(out.freeze()),
            ends,
        })
    }

    /// Clients → program: each message whole (a line, or raw bytes with `--binary`), or
    /// with `tagged` one JSON object per line. Never completes: once the program stops
    /// reading, input is dropped.
    async fn relay_input(&self, stdin: &mut Option<pipe::Sender>, epoch: u64, scope: &Scope) {
        if self.settings.input == BroadcastInput::None {
            return std::future::pending().await;
        }
        let mut batch = Vec::new();
        loop {
            let Some(input) = self.bus.next_input().await else {
                return std::future::pending().await;
            };
            self.format_input(&input, epoch, &mut batch);
            while batch.len() < INPUT_BATCH {
                match self.bus.next_input().now_or_never() {
                    Some(Some(input)) => self.format_input(&input, epoch, &mut batch),
                    _ => break,
                }
            }
            if let Some(pipe) = stdin.as_mut() {
                if let Err(err) = pipe.write_all(&batch).await {
                    scope.debug("process", &format!("Cannot write to STDIN: {err}"));
                    *stdin = None;
                }
            }
            batch.clear();
            if batch.capacity() > INPUT_BATCH * 2 {
                batch = Vec::new();
            }
        }
    }

    fn format_input(&self, input: &Input, epoch: u64, out: &mut Vec<u8>) {
        if input.epoch != epoch {
            return;
        }
        match (self.settings.input, &input.event) {
            (BroadcastInput::None, _) => {}
            (BroadcastInput::Lines, InputEvent::Message(data)) => {
                out.extend_from_slice(data);
                if !self.settings.binary {
                    out.push(b'\n');
                }
            }
            (BroadcastInput::Lines, _) => {}
            (BroadcastInput::Tagged, event) => {
                out.extend_from_slice(b"{\"id\":");
                json_string(out, input.client.as_bytes());
                match event {
                    InputEvent::Join(remote) => {
                        out.extend_from_slice(b",\"event\":\"join\",\"remote\":");
                        json_string(out, remote.as_bytes());
                    }
                    InputEvent::Message(data) => {
                        out.extend_from_slice(b",\"data\":");
                        json_string(out, data);
                    }
                    InputEvent::Leave => out.extend_from_slice(b",\"event\":\"leave\""),
                }
                out.extend_from_slice(b"}\n");
            }
        }
    }
}

/// Asks the running program to stop; a client arriving from now on starts a new one.
fn stop_run(state: &mut HubState) {
    if let Some(run) = state.run.as_mut() {
        if !run.stopping {
            run.stopping = true;
            run.stop.notify_one();
        }
    }
}

/// Completes when the daemon starts shutting down.
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}
