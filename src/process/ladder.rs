//! The termination ladder: close stdin, then SIGINT, SIGTERM and SIGKILL to the program's
//! process group (and to its descendants that left the group, see `contain`), each after a
//! wait, until the program and everything it started are gone.

use super::Child;
use crate::logging::Scope;
use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use std::process::ExitStatus;
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::time::Instant;

/// How often a group whose leader has exited is checked for remaining members.
const GROUP_POLL: Duration = Duration::from_millis(5);

/// Ends a program: closes `stdin`, waits 100 + `close_ms` ms, sends SIGINT to the group,
/// waits 250 + `close_ms`, SIGTERM, waits 500 + `close_ms`, SIGKILL, waits 1000 ms. Stops
/// as soon as the program has exited and no process of its group is left. Returns the
/// program's exit status when it was reaped.
pub async fn terminate(
    child: &mut Child,
    stdin: Option<pipe::Sender>,
    close_ms: u64,
    scope: &Scope,
) -> Option<ExitStatus> {
    let pid = child.id();
    survey(child);
    drop(stdin);
    let mut status = None;
    let steps: [(Option<Signal>, &str, u64); 4] = [
        (None, "stdin was closed", 100 + close_ms),
        (Some(Signal::INT), "SIGINT", 250 + close_ms),
        (Some(Signal::TERM), "SIGTERM", 500 + close_ms),
        (Some(Signal::KILL), "SIGKILL", 1000),
    ];
    for (signal, step, wait_ms) in steps {
        if let Some(signal) = signal {
            send(child, signal, step, scope);
        }
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        if wait_gone(child, &mut status, deadline).await {
            scope.debug("process", &format!("Process {pid} terminated after {step}"));
            return status;
        }
    }
    scope.error("process", &format!("SIGKILL did not terminate {pid}!"));
    status
}

/// How long the last step waits after SIGKILL before giving up on a program.
const KILL_WAIT: Duration = Duration::from_millis(1000);

/// Ends a program that has no stdin worth closing (a CGI script whose client went away):
/// SIGTERM to its group, waits `grace`, then SIGKILL and waits 1000 ms. Stops as soon as the
/// program has been reaped and no process of its group is left. Returns the program's exit
/// status when it was reaped.
pub async fn terminate_group(
    child: &mut Child,
    grace: Duration,
    scope: &Scope,
) -> Option<ExitStatus> {
    let pid = child.id();
    survey(child);
    let mut status = None;
    for (signal, step, wait) in [
        (Signal::TERM, "SIGTERM", grace),
        (Signal::KILL, "SIGKILL", KILL_WAIT),
    ] {
        send(child, signal, step, scope);
        if wait_gone(child, &mut status, Instant::now() + wait).await {
            scope.debug("process", &format!("Process {pid} terminated after {step}"));
            return status;
        }
    }
    scope.error("process", &format!("SIGKILL did not terminate {pid}!"));
    status
}

/// Sends SIGKILL to the process group led by `pid` without waiting, for clean-up paths
/// that cannot wait (a dropped task). Errors are ignored: the group may be gone already.
pub fn kill_group_now(pid: u32) {
    if let Some(group) = to_pid(pid) {
        let _ = kill_process_group(group, Signal::KILL);
    }
}

/// Notes the program's descendants that left its group while it still runs (once it has
/// exited they can no longer be traced back to it without a cgroup).
fn survey(child: &mut Child) {
    let pid = child.id();
    if let Some(containment) = child.containment() {
        containment.survey(pid);
    }
}

/// Sends `signal` to the program's process group and to its descendants that left the
/// group, logging a failure other than the group having already gone.
fn send(child: &mut Child, signal: Signal, name: &str, scope: &Scope) {
    let pid = child.id();
    if let Some(containment) = child.containment() {
        containment.signal_escaped(pid, signal);
    }
    let Some(group) = to_pid(pid) else { return };
    match kill_process_group(group, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(err) => scope.error("process", &format!("{name} unsuccessful to {pid}: {err}")),
    }
}

/// Waits until the program has been reaped and its group has no live member, or until
/// `deadline`. Returns whether everything is gone.
async fn wait_gone(child: &mut Child, status: &mut Option<ExitStatus>, deadline: Instant) -> bool {
    if status.is_none() {
        match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(Ok(exit)) => *status = Some(exit),
            // Waiting failed: nothing more can be learnt about the leader.
            Ok(Err(_)) => {}
            Err(_) => return false,
        }
    }
    loop {
        let pid = child.id();
        let escaped_alive = child
            .containment()
            .is_some_and(|containment| containment.has_live_member());
        if !escaped_alive && !group_has_live_member(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
}

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// Whether any process that is not a zombie remains in the process group `pgid`.
pub fn group_has_live_member(pgid: u32) -> bool {
    let Some(group) = to_pid(pgid) else {
        return false;
    };
    if test_kill_process_group(group).is_err() {
        return false;
    }
    // Members exist, but zombies count for kill(2); only /proc tells them apart.
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return false;
        };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        std::fs::read_to_string(format!("/proc/{name}/stat"))
            .ok()
            .and_then(|stat| live_group_of(&stat))
            == Some(pgid)
    })
}

/// From a `/proc/PID/stat` line, the process group of a live (non-zombie) process.
fn live_group_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    if state == "Z" || state == "X" {
        None
    } else {
        Some(pgrp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat() {
        assert_eq!(live_group_of("123 (a b) c) S 1 4242 4242 0 -1"), Some(4242));
        assert_eq!(live_group_of("123 (sleep) Z 1 77 77 0"), None);
        assert_eq!(live_group_of("garbage"), None);
    }
}
