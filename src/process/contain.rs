//! Keeping hold of everything a program starts, including processes that leave its process
//! group or session (`setsid`, double forks), so that they end with the program's session.
//!
//! Two ways, chosen once at start-up:
//! - **cgroup v2**, when the daemon may create cgroups below its own (root, or a delegated
//!   subtree): each program starts in a fresh cgroup of its own, which no descendant can
//!   leave. The termination ladder's signals go to every process in it, and when the session
//!   ends whatever is left is killed (`cgroup.kill`) and the cgroup removed.
//! - **child subreaper** otherwise: the process that starts programs (the spawner helper, or
//!   the daemon itself) is marked `PR_SET_CHILD_SUBREAPER`, so orphaned descendants are
//!   re-parented to it instead of to init and never outlive the daemon. While a program
//!   runs, its descendants that left its process group are found through `/proc` (each
//!   process's children lists) when the session ends; they get the ladder's signals through
//!   pidfds and are killed with the session.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How programs are contained in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One cgroup per program, created inside `parent`.
    Cgroup {
        /// The daemon's own cgroup directory for its programs' cgroups.
        parent: PathBuf,
    },
    /// The spawning process is a child subreaper.
    Subreaper,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// How long a finished session's cgroup may take to empty after `cgroup.kill`.
const EMPTY_WAIT: Duration = Duration::from_secs(2);

/// The containment in force (subreaper until [`init`] found a usable cgroup).
pub fn mode() -> &'static Mode {
    MODE.get_or_init(|| Mode::Subreaper)
}

/// Chooses the containment: a cgroup for the daemon's programs below the daemon's own
/// cgroup, if one can be created and a process can be moved into it; otherwise the
/// subreaper. Call once at start-up, before programs are started.
pub fn init() -> &'static Mode {
    let chosen = match try_cgroup_parent() {
        Some(parent) => Mode::Cgroup { parent },
        None => Mode::Subreaper,
    };
    MODE.get_or_init(|| chosen)
}

/// Says at DEBUG level how programs are contained.
pub fn log_mode(mode: &Mode) {
    let text = match mode {
        Mode::Cgroup { parent } => format!(
            "Each program runs in its own cgroup below {}",
            parent.display()
        ),
        Mode::Subreaper => {
            "No cgroup can be created: programs' escaped descendants are tracked as a child subreaper"
                .to_string()
        }
    };
    crate::logging::server(crate::logging::Level::Debug, &text);
}

/// Marks this process as the child subreaper of everything it starts: orphaned
/// descendants of its programs come back to it, not to init. (Harmless with cgroups too:
/// it then reaps the orphans that the cgroup holds.)
pub fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

/// The daemon's cgroup v2 directory, from `/proc/self/cgroup` and the mount table.
fn own_cgroup() -> Option<PathBuf> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?
        .trim_end();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in mounts.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        if after.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let Some(inside) = relative.strip_prefix(root.trim_end_matches('/')) else {
            continue;
        };
        let mut dir = PathBuf::from(unescape_mount_path(mount_point));
        dir.push(inside.trim_start_matches('/'));
        return Some(dir);
    }
    None
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\NNN` (octal).
fn unescape_mount_path(text: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// Checks that `websocketd.PID` can be created in the daemon's cgroup and that a process
/// can be moved into a cgroup below it (a forked child that exits without running
/// anything); removes it again and returns its path.
fn try_cgroup_parent() -> Option<PathBuf> {
    let own = own_cgroup()?;
    let parent = own.join(format!("websocketd.{}", std::process::id()));
    if let Err(err) = std::fs::create_dir(&parent) {
        // A directory with our PID in its name can only be left over from an earlier
        // process that had the same PID: remove it (and its empty cgroups), then retry.
        if err.kind() != io::ErrorKind::AlreadyExists {
            return None;
        }
        remove_stale(&parent);
        std::fs::create_dir(&parent).ok()?;
    }
    let works = trial_move(&parent).is_ok();
    // Created again with the first program: a daemon that never starts one leaves nothing
    // behind, whichever way it ends.
    let _ = std::fs::remove_dir(&parent);
    works.then_some(parent)
}

/// Removes a left-over cgroup directory and the empty cgroups below it (best effort: a
/// cgroup that still holds processes stays, and the caller then falls back).
fn remove_stale(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn trial_move(parent: &Path) -> io::Result<()> {
    let trial = parent.join("trial");
    std::fs::create_dir(&trial)?;
    let procs = open_procs(&trial);
    let result = procs.and_then(|procs| {
        let mut command = std::process::Command::new("/proc/self/exe");
        let fd = procs.as_raw_fd();
        // SAFETY: between fork and exec the closure only calls write(2) and _exit(2),
        // both async-signal-safe, on a descriptor that stays open in the parent until
        // the child has been waited for; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || {
                join_now(fd)?;
                libc::_exit(0)
            });
        }
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = command.spawn()?;
        child.wait()?;
        Ok(())
    });
    let _ = std::fs::remove_dir(&trial);
    result
}

fn open_procs(dir: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))?;
    Ok(OwnedFd::from(file))
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open as `fd`.
fn join_now(fd: i32) -> io::Result<()> {
    // SAFETY: write(2) on a descriptor number and a static buffer; async-signal-safe.
    let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    if written == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Arranges for `command`'s child to move itself into the cgroup `dir` before `exec`, so
/// that nothing it ever starts is outside it. The returned descriptor must stay open until
/// the child has been started.
pub fn join_in_child(command: &mut std::process::Command, dir: &Path) -> io::Result<OwnedFd> {
    let procs = open_procs(dir)?;
    let fd = procs.as_raw_fd();
    // SAFETY: the closure only calls write(2) (async-signal-safe) on a descriptor the
    // caller keeps open until spawn returns; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || join_now(fd));
    }
    Ok(procs)
}

/// A program's cgroup, removed (after killing whatever is left in it) when dropped.
#[derive(Debug)]
pub struct SessionCgroup {
    dir: PathBuf,
}

impl SessionCgroup {
    /// A new, empty cgroup for one program, when cgroups are the containment in force.
    pub fn create() -> Option<io::Result<SessionCgroup>> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let Mode::Cgroup { parent } = mode() else {
            return None;
        };
        let dir = parent.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
        let made = match std::fs::create_dir(parent) {
            Err(err) if err.kind() != io::ErrorKind::AlreadyExists => Err(err),
            _ => std::fs::create_dir(&dir),
        };
        Some(made.map(|()| SessionCgroup { dir }))
    }

    /// Where the cgroup lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SessionCgroup {
    fn drop(&mut self) {
        janitor(std::mem::take(&mut self.dir));
    }
}

/// Removes the daemon's cgroup for its programs (`websocketd.PID`, created with the first
/// program) and whatever cgroups are still below it, killing what they hold. Called when
/// the daemon or the spawner helper ends; does nothing when there is none.
pub fn remove_parent(parent: &Path) {
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(parent);
}

/// At the daemon's exit: removes its programs' cgroups when cgroups are in force.
pub fn release() {
    if let Some(Mode::Cgroup { parent }) = MODE.get() {
        remove_parent(parent);
    }
}

/// Hands a finished cgroup to the thread that kills what is left in it and removes it
/// (waiting for the kernel to empty it must not hold up the caller).
fn janitor(dir: PathBuf) {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<PathBuf>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<PathBuf>();
        let _ = std::thread::Builder::new()
            .name("cgroup-janitor".into())
            .spawn(move || {
                for dir in receiver {
                    remove_cgroup(&dir);
                }
            });
        Mutex::new(sender)
    });
    let sender = queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if sender.send(dir.clone()).is_err() {
        remove_cgroup(&dir);
    }
}

/// Kills every process in the cgroup `dir` and removes it once empty (bounded wait).
pub fn remove_cgroup(dir: &Path) {
    let deadline = Instant::now() + EMPTY_WAIT;
    loop {
        kill_all_in(dir);
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILL to everything in the cgroup: `cgroup.kill` where the kernel has it (5.14+),
/// otherwise each listed process.
fn kill_all_in(dir: &Path) {
    if std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut kill| kill.write_all(b"1"))
        .is_ok()
    {
        return;
    }
    signal_members(dir, rustix::process::Signal::KILL, None);
}

/// Sends `signal` to every process listed in the cgroup `dir`, except members of the
/// process group `skip_group` (the ladder signals the group itself).
fn signal_members(dir: &Path, signal: rustix::process::Signal, skip_group: Option<u32>) {
    for pid in members(dir) {
        let raw = pid.as_raw_nonzero().get().unsigned_abs();
        if skip_group.is_some() && group_of(raw) == skip_group {
            continue;
        }
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The processes of a cgroup.
fn members(dir: &Path) -> Vec<rustix::process::Pid> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse::<i32>().ok())
        .filter_map(rustix::process::Pid::from_raw)
        .collect()
}

/// Whether any live (non-zombie) process is left in the cgroup `dir`.
fn has_live_member(dir: &Path) -> bool {
    members(dir)
        .into_iter()
        .any(|pid| state_of(pid.as_raw_nonzero().get()).is_some_and(|s| s != 'Z' && s != 'X'))
}

/// A process's state letter from `/proc/PID/stat`.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// What holds a program's descendants, for the termination ladder.
#[derive(Debug)]
pub enum Containment {
    /// The program's own cgroup.
    Cgroup(SessionCgroup),
    /// Descendants found outside the program's process group.
    Tree(Escaped),
}

impl Containment {
    /// The containment for a program started in `cgroup` (or outside any cgroup).
    pub fn new(cgroup: Option<SessionCgroup>) -> Containment {
        match cgroup {
            Some(cgroup) => Containment::Cgroup(cgroup),
            None => Containment::Tree(Escaped::default()),
        }
    }

    /// Sends `signal` to the program's descendants outside its process group `leader`.
    pub fn signal_escaped(&mut self, leader: u32, signal: rustix::process::Signal) {
        match self {
            Containment::Cgroup(cgroup) => signal_members(&cgroup.dir, signal, Some(leader)),
            Containment::Tree(escaped) => {
                escaped.collect(leader);
                escaped.signal(signal);
            }
        }
    }

    /// Finds the descendants outside the process group `leader` while it runs (a cgroup
    /// needs no search).
    pub fn survey(&mut self, leader: u32) {
        if let Containment::Tree(escaped) = self {
            escaped.collect(leader);
        }
    }

    /// Whether a descendant outside the process group may still be running.
    pub fn has_live_member(&mut self) -> bool {
        match self {
            Containment::Cgroup(cgroup) => has_live_member(&cgroup.dir),
            Containment::Tree(escaped) => escaped.any_alive(),
        }
    }
}

// ---- The subreaper path: descendants that left the program's process group ----

/// Descendants of a program outside its process group, held by pidfd so that a signal
/// can never reach a process that reused one of their PIDs.
#[derive(Debug, Default)]
pub struct Escaped {
    found: Vec<(u32, OwnedFd)>,
}

impl Escaped {
    /// Adds the descendants of `leader` (walked through `/proc`) that are not in its
    /// process group. Does nothing once `leader` is gone (its children were re-parented).
    pub fn collect(&mut self, leader: u32) {
        let mut pending = vec![leader];
        let mut seen = 0usize;
        while let Some(pid) = pending.pop() {
            seen += 1;
            // A bound against a fork bomb racing the walk.
            if seen > 100_000 {
                break;
            }
            for child in children_of(pid) {
                pending.push(child);
                if group_of(child).is_some_and(|group| group != leader)
                    && !self.found.iter().any(|(known, _)| *known == child)
                {
                    let opened = i32::try_from(child)
                        .ok()
                        .and_then(rustix::process::Pid::from_raw)
                        .and_then(|pid| {
                            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                                .ok()
                        });
                    if let Some(pidfd) = opened {
                        self.found.push((child, pidfd));
                    }
                }
            }
        }
    }

    /// Sends `signal` to every escaped descendant still running.
    pub fn signal(&self, signal: rustix::process::Signal) {
        for (_, pidfd) in &self.found {
            let _ = rustix::process::pidfd_send_signal(pidfd, signal);
        }
    }

    /// Whether any escaped descendant is still running.
    pub fn any_alive(&mut self) -> bool {
        self.found.retain(|(_, pidfd)| !exited(pidfd));
        !self.found.is_empty()
    }
}

impl Drop for Escaped {
    fn drop(&mut self) {
        self.signal(rustix::process::Signal::KILL);
    }
}

/// Whether the process behind `pidfd` has exited (a pidfd polls readable then).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut poll = libc::pollfd {
        fd: pidfd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on our stack, count 1, no wait.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready != 0
}

/// The children of `pid`, from the children lists of all its threads.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// The process group of a live process.
fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    (state != "Z").then_some(group)
}

/// The spawning process's children that it did not start (orphans re-parented to it as
/// subreaper), for ending them when the daemon goes away.
pub fn adopted(started: &std::collections::BTreeSet<u32>) -> Vec<u32> {
    children_of(std::process::id())
        .into_iter()
        .filter(|pid| !started.contains(pid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/sys/fs/a\040b"),
            OsString::from("/sys/fs/a b")
        );
        assert_eq!(unescape_mount_path(r"/x\\y\0"), OsString::from(r"/x\\y\0"));
    }

    #[test]
    fn own_cgroup_is_a_directory_when_found() {
        if let Some(dir) = own_cgroup() {
            assert!(dir.join("cgroup.procs").exists(), "{}", dir.display());
        }
    }
}
