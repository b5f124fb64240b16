//! A program starts with every signal at its default disposition and none blocked,
//! whatever the daemon inherited. `exec` keeps ignored signals ignored and keeps the
//! signal mask, so a daemon started in the background by a shell (`websocketd … &`, which
//! ignores SIGINT and SIGQUIT) would otherwise hand that on, and its programs would shrug
//! off the termination ladder's SIGINT.

use std::io;
use std::os::unix::process::CommandExt;

/// Arranges for `command`'s child to reset every signal to its default disposition and to
/// unblock all signals just before `exec`.
pub fn reset_in_child(command: &mut std::process::Command) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called. It calls sigaction, sigemptyset and
    // sigprocmask (all async-signal-safe per POSIX), allocates nothing, takes no lock and
    // touches only its own stack.
    unsafe {
        command.pre_exec(defaults_now);
    }
}

/// For the spawner helper, which starts programs with the standard library's fast path
/// (no pre-exec step): resets every signal of this process except SIGPIPE to its default
/// disposition and unblocks every signal of the calling thread, once, so that the programs
/// it starts from this thread inherit neither. (The standard library itself gives children
/// a default SIGPIPE.) Call before starting other threads.
pub fn reset_for_children() {
    reset_dispositions(&[libc::SIGPIPE]);
    let _ = unblock_all();
}

/// Resets every catchable signal but `keep` to SIG_DFL. Signals that cannot be changed
/// (SIGKILL, SIGSTOP) are skipped. Async-signal-safe.
fn reset_dispositions(keep: &[i32]) {
    // SAFETY: `action` is a zeroed sigaction (a valid value: no flags, empty mask) with
    // SIG_DFL as handler; sigaction only reads it. An invalid signal number makes sigaction
    // fail with EINVAL, which is ignored.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        for signal in 1..=libc::SIGRTMAX() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP && !keep.contains(&signal) {
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }
    reset_reserved();
}

/// Resets every catchable signal to SIG_DFL and empties the signal mask of the calling
/// process.
fn defaults_now() -> io::Result<()> {
    reset_dispositions(&[]);
    unblock_all()
}

/// Empties the signal mask of the calling thread. Async-signal-safe.
fn unblock_all() -> io::Result<()> {
    // SAFETY: `set` is initialised by sigemptyset before sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The C library keeps signals 32 and 33 for itself and refuses to change them, but an
/// inherited "ignore" on them survives `exec` all the same: reset them with the system
/// call itself.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn reset_reserved() {
    /// The kernel's `struct sigaction` on these architectures.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let action = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 32..libc::SIGRTMIN() {
        // SAFETY: rt_sigaction reads `action` (a valid kernel sigaction with SIG_DFL and
        // an empty mask of 8 bytes) and writes nothing (null old action).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                &action as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn reset_reserved() {}
