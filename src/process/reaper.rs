//! Exit statuses of the programs the daemon starts, without a descriptor per child: each
//! status is handed to whoever waits for that PID. Statuses come either from the spawner
//! helper (which starts and reaps the programs) or, when it is not running, from a thread
//! of our own waiting for any child. (A pidfd per child would add a fifth descriptor to
//! every connection.)

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use tokio::sync::oneshot;

/// A started program whose exit status arrives through the reaper.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    status: Option<ExitStatus>,
    receiver: Option<oneshot::Receiver<ExitStatus>>,
    /// What holds the program's descendants; dropping it kills those left.
    containment: Option<super::contain::Containment>,
}

impl Child {
    /// Attaches what holds the program's descendants (they are killed when the child is
    /// dropped).
    pub fn contain(&mut self, containment: super::contain::Containment) {
        self.containment = Some(containment);
    }

    /// What holds the program's descendants, if anything.
    pub fn containment(&mut self) -> Option<&mut super::contain::Containment> {
        self.containment.as_mut()
    }

    /// The program's PID (also its process group ID).
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the program to exit. Cancel-safe; returns at once once it has exited.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let receiver = self
            .receiver
            .as_mut()
            .ok_or_else(|| io::Error::other("no exit status will arrive"))?;
        match receiver.await {
            Ok(status) => {
                self.status = Some(status);
                self.receiver = None;
                Ok(status)
            }
            Err(_) => {
                self.receiver = None;
                Err(io::Error::other("exit status lost"))
            }
        }
    }
}

type Waiting = HashMap<u32, oneshot::Sender<ExitStatus>>;

/// Programs started and not yet reaped, by PID.
struct Table {
    waiting: Mutex<Waiting>,
    children_exist: Condvar,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        waiting: Mutex::new(HashMap::new()),
        children_exist: Condvar::new(),
    })
}

fn lock(table: &Table) -> MutexGuard<'_, Waiting> {
    table
        .waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a program with `start` (which returns its PID) and registers it. The table stays
/// locked meanwhile, so a status that arrives at once is not missed.
pub fn register<T>(start: impl FnOnce() -> io::Result<(u32, T)>) -> io::Result<(T, Child)> {
    let table = table();
    let mut waiting = lock(table);
    let (pid, started) = start()?;
    let (sender, receiver) = oneshot::channel();
    waiting.insert(pid, sender);
    drop(waiting);
    crate::metrics::program_started();
    table.children_exist.notify_one();
    Ok((
        started,
        Child {
            pid,
            status: None,
            receiver: Some(receiver),
            containment: None,
        },
    ))
}

/// Hands a reaped program's raw wait status to its waiter.
pub fn deliver(pid: u32, raw_status: i32) {
    if let Some(sender) = lock(table()).remove(&pid) {
        crate::metrics::program_ended();
        let _ = sender.send(ExitStatus::from_raw(raw_status));
    }
}

/// Fails the wait for `pid`: its status will never arrive (whoever reaps it is gone).
pub fn abandon(pid: u32) {
    if lock(table()).remove(&pid).is_some() {
        crate::metrics::program_ended();
    }
}

/// Starts `command` as our own child; its status comes from a thread waiting for any
/// child (started on first use).
pub fn spawn_local(
    command: &mut std::process::Command,
) -> io::Result<(std::process::Child, Child)> {
    static WAITER: OnceLock<()> = OnceLock::new();
    WAITER.get_or_init(|| {
        // The daemon starts programs itself: their orphans come back to it.
        super::contain::become_subreaper();
        let started = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(reap_forever);
        if let Err(err) = started {
            crate::logging::server(
                crate::logging::Level::Error,
                &format!("cannot start the child reaper: {err}"),
            );
        }
    });
    register(|| {
        let child = command.spawn()?;
        Ok((child.id(), child))
    })
}

/// Waits until a child of this process has exited, without reaping it, and returns its
/// PID. A reaper must not reap a child that `Command::spawn` is still starting: when `exec`
/// fails, `spawn` reaps that child itself and panics if it is already gone. So reapers look
/// first, then take the lock that starting holds, then reap with [`reap`].
pub fn exited_child() -> io::Result<u32> {
    loop {
        // SAFETY: waitid fills the zeroed siginfo_t we pass; WNOWAIT leaves the child
        // waitable. si_pid is valid for the SIGCHLD information waitid returns.
        let pid = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            if libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) != 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            info.si_pid()
        };
        if let Ok(pid) = u32::try_from(pid) {
            if pid != 0 {
                return Ok(pid);
            }
        }
    }
}

/// Reaps `pid` if it has exited and nobody reaped it meanwhile; returns its raw status.
pub fn reap(pid: u32) -> Option<i32> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)?;
    match rustix::process::waitpid(Some(target), rustix::process::WaitOptions::NOHANG) {
        Ok(Some((_, status))) => Some(status.as_raw()),
        _ => None,
    }
}

/// Waits for any child of this process and delivers its status; sleeps while there are
/// none.
fn reap_forever() {
    loop {
        match exited_child() {
            Ok(pid) => {
                // Starting a program holds the table (see `exited_child`).
                let held = lock(table());
                let reaped = reap(pid);
                drop(held);
                if let Some(status) = reaped {
                    deliver(pid, status);
                }
            }
            Err(_) => {
                // No children: sleep until one is started. (A child registered since the
                // failed wait makes the table non-empty: wait for it right away.)
                let table = table();
                let waiting = lock(table);
                if waiting.is_empty() {
                    let _unused = table
                        .children_exist
                        .wait(waiting)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }
}
