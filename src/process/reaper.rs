//! Collecting the exit status of every program the daemon starts, without a descriptor per
//! child: one thread waits for any child to exit and hands each status to whoever waits for
//! that PID. (A pidfd per child would add a fifth descriptor to every connection.)

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
}

impl Child {
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

/// Children that have been started and not yet reaped, by PID.
struct Table {
    waiting: Mutex<HashMap<u32, oneshot::Sender<ExitStatus>>>,
    children_exist: Condvar,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(reap_forever);
        if let Err(err) = started {
            crate::logging::server(
                crate::logging::Level::Error,
                &format!("cannot start the child reaper: {err}"),
            );
        }
        Table {
            waiting: Mutex::new(HashMap::new()),
            children_exist: Condvar::new(),
        }
    })
}

fn lock(table: &Table) -> MutexGuard<'_, HashMap<u32, oneshot::Sender<ExitStatus>>> {
    table
        .waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts `command` and registers it, so its exit status reaches the returned [`Child`].
/// The table stays locked across the spawn so the reaper cannot see the child's exit
/// before it is registered.
pub fn spawn(command: &mut std::process::Command) -> io::Result<(std::process::Child, Child)> {
    let table = table();
    let mut waiting = lock(table);
    let child = command.spawn()?;
    let pid = child.id();
    let (sender, receiver) = oneshot::channel();
    waiting.insert(pid, sender);
    drop(waiting);
    table.children_exist.notify_one();
    Ok((
        child,
        Child {
            pid,
            status: None,
            receiver: Some(receiver),
        },
    ))
}

/// The reaper thread: waits for any child, delivers its status, and sleeps while the
/// daemon has no children.
fn reap_forever() {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((pid, status))) => {
                let pid = pid.as_raw_nonzero().get().unsigned_abs();
                let exit = ExitStatus::from_raw(status.as_raw());
                let table = table();
                if let Some(sender) = lock(table).remove(&pid) {
                    let _ = sender.send(exit);
                }
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
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
