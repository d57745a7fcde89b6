//! Every libc call agent-exec makes, each behind a small safe wrapper.
//!
//! This is the only module with `unsafe`. Each block says why it is
//! sound; the code that runs between `fork` and `exec` says why each call
//! there is async-signal-safe (the caller may be multi-threaded: the HTTP
//! server launches jobs from worker threads).
//!
//! Rejected: the `nix` crate (not in our dependency budget); `kill(pid, 0)`
//! as a liveness test (PID reuse; we use a flock the supervisor holds).

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

/// Fill `buf` from the kernel's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable
        // slice; getrandom writes at most `rest.len()` bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// File locks (the kernel's word on whether a supervisor is alive)
// ---------------------------------------------------------------------------

fn flock(fd: RawFd, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock only reads the descriptor number; the caller's
        // `File` keeps it open for the duration of the call.
        let rc = unsafe { libc::flock(fd, op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if op & libc::LOCK_NB != 0 => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Try to take an exclusive lock without blocking.
/// Ok(true): we hold it. Ok(false): someone else does.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)
}

/// Block until an exclusive lock is ours.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    flock(file.as_raw_fd(), libc::LOCK_EX).map(|_| ())
}

/// Drop whatever lock this open file description holds.
pub fn unlock(file: &File) -> io::Result<()> {
    flock(file.as_raw_fd(), libc::LOCK_UN).map(|_| ())
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// A pipe whose both ends are close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn getfd(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFD only reads descriptor flags.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = getfd(fd)?;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: F_SETFD only changes descriptor flags.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) }).map(|_| ())
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL only read and change file status flags.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(|_| ())
}

/// Ask for a larger pipe buffer (fewer wake-ups when a job is chatty).
/// Best effort: the limit is /proc/sys/fs/pipe-max-size.
pub fn set_pipe_size(fd: RawFd, bytes: i32) {
    // SAFETY: F_SETPIPE_SZ only resizes the pipe's kernel buffer.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes);
    }
}

/// Take ownership of a descriptor inherited across exec (the supervisor's
/// readiness pipe and job lock), after checking that it is open, and mark
/// it close-on-exec so the workload never inherits it.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    getfd(fd)?;
    set_cloexec(fd, true)?;
    // SAFETY: the descriptor is open (F_GETFD succeeded) and nothing else
    // in this process owns it: it was placed here by our launcher for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---------------------------------------------------------------------------
// Detached launch: fork → setsid → fork → exec
// ---------------------------------------------------------------------------

/// Descriptors that the exec'd program finds at fixed numbers.
pub const MAX_KEEP: usize = 4;

/// Start `exe argv...` as a grandchild in a new session, with stdio on
/// /dev/null and `keep` descriptors placed at the given numbers (≥ 3).
/// The intermediate child is reaped before returning, so the caller never
/// collects a zombie; the grandchild is re-parented to init.
pub fn spawn_detached(exe: &CStr, argv: &[CString], keep: &[(RawFd, RawFd)]) -> io::Result<()> {
    if keep.len() > MAX_KEEP || keep.iter().any(|&(_, dst)| !(3..64).contains(&dst)) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad fd map"));
    }
    // Everything the children need is built before fork: after fork only
    // async-signal-safe calls run, and no allocation happens.
    let devnull = File::options().read(true).write(true).open("/dev/null")?;
    let null_fd = devnull.as_raw_fd();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let mut map = [(-1, -1); MAX_KEEP];
    for (slot, pair) in map.iter_mut().zip(keep) {
        *slot = *pair;
    }
    let n = keep.len();
    let top = keep.iter().map(|&(_, d)| d).max().unwrap_or(2);

    // SAFETY: fork has no memory-safety preconditions. In the children we
    // call only async-signal-safe functions (setsid, fork, sigprocmask,
    // fcntl, dup2, syscall(close_range), execv, _exit) on data prepared
    // above, which stays valid because fork copies the address space.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; every call here is async-signal-safe and the
        // child never returns into Rust code (it execs or _exits).
        unsafe {
            if libc::setsid() < 0 {
                libc::_exit(1);
            }
            let pid2 = libc::fork();
            if pid2 != 0 {
                libc::_exit(if pid2 < 0 { 1 } else { 0 });
            }
            // A clean signal mask: the server blocks SIGTERM/SIGINT in
            // its threads, and masks survive exec.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            // Move the kept descriptors out of the way first, so a source
            // number that equals another's destination is not clobbered.
            let mut tmp = [-1; MAX_KEEP];
            for i in 0..n {
                tmp[i] = libc::fcntl(map[i].0, libc::F_DUPFD_CLOEXEC, 64);
                if tmp[i] < 0 {
                    libc::_exit(126);
                }
            }
            libc::dup2(null_fd, 0);
            libc::dup2(null_fd, 1);
            libc::dup2(null_fd, 2);
            for i in 0..n {
                // dup2 leaves the new number without FD_CLOEXEC.
                if libc::dup2(tmp[i], map[i].1) < 0 {
                    libc::_exit(126);
                }
            }
            // Stray descriptors the caller left inheritable stay behind.
            libc::syscall(
                libc::SYS_close_range,
                (top + 1) as libc::c_uint,
                libc::c_uint::MAX,
                0,
            );
            libc::execv(exe.as_ptr(), ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    drop(devnull);
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes one int into `status`.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // SIGCHLD ignored by the caller: the kernel reaped it.
            Some(libc::ECHILD) => break,
            _ => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Children: pidfd, wait4, signals
// ---------------------------------------------------------------------------

/// A descriptor that becomes readable when `pid` exits (Linux ≥ 5.3).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// How a child ended, from the raw wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Resource use of a reaped child.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub user_ms: u64,
    pub sys_ms: u64,
    pub max_rss_kb: u64,
}

/// Reap `pid`. With `block == false`, Ok(None) means it is still running.
pub fn wait4(pid: u32, block: bool) -> io::Result<Option<(Exit, Usage)>> {
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value for it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: wait4 writes into `status` and `ru`, both live locals.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut ru) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            return Ok(None);
        }
        break;
    }
    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    let ms = |tv: libc::timeval| tv.tv_sec as u64 * 1000 + tv.tv_usec as u64 / 1000;
    let usage = Usage {
        user_ms: ms(ru.ru_utime),
        sys_ms: ms(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss.max(0) as u64,
    };
    Ok(Some((exit, usage)))
}

/// Send `sig` to a process (`pid > 0`) or a process group (`pid < 0`).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers and touches no memory of ours.
    cvt(unsafe { libc::kill(pid, sig) }).map(|_| ())
}

/// Signal a whole process group; ESRCH (already gone) is not an error.
pub fn kill_group(pgid: u32, sig: i32) -> io::Result<bool> {
    if pgid <= 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad pgid"));
    }
    match kill(-(pgid as i32), sig) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Has `pid` exited? Does not reap it: the zombie keeps the pid (and so
/// the process-group id) reserved until `wait4` collects it.
pub fn has_exited(pid: u32) -> io::Result<bool> {
    // SAFETY: siginfo_t is plain data; waitid fills it in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid writes into `info`, a live local.
    cvt(unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) })?;
    // SAFETY: after a successful waitid, si_pid is initialised (0 when
    // no child has changed state).
    Ok(unsafe { info.si_pid() } != 0)
}

// ---------------------------------------------------------------------------
// inotify: event-driven waiting on a job directory
// ---------------------------------------------------------------------------

/// An inotify descriptor watching `dir` for files renamed into it or
/// closed after writing (state.json updates), and for its removal.
pub fn watch_dir(dir: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has NUL"))?;
    // SAFETY: inotify_init1 takes flags and returns a new descriptor.
    let fd = cvt(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
    // SAFETY: the kernel just gave us this descriptor.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    cvt(unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) })?;
    Ok(owned)
}

// ---------------------------------------------------------------------------
// poll
// ---------------------------------------------------------------------------

pub use libc::POLLIN;
pub type PollFd = libc::pollfd;

pub fn poll_fd(fd: RawFd, events: i16) -> PollFd {
    PollFd {
        fd,
        events,
        revents: 0,
    }
}

/// poll(2); an interrupted call reports zero ready descriptors.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `fds`, a live mutable slice
    // of pollfd structs that poll reads and updates in place.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

// ---------------------------------------------------------------------------
// Signal names and the serve shutdown signals
// ---------------------------------------------------------------------------

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The signal names `kill --signal` offers (completion and docs).
pub fn signal_names() -> impl Iterator<Item = &'static str> {
    SIGNALS.iter().map(|(n, _)| *n)
}

/// `TERM`, `SIGTERM`, `sigterm` and `15` all mean SIGTERM.
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return SIGNALS.iter().find(|(_, v)| *v == n).map(|(_, v)| *v);
    }
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

/// `SIGTERM` for 15; `SIG<n>` for numbers without a name.
pub fn signal_name(sig: i32) -> String {
    match SIGNALS.iter().find(|(_, v)| *v == sig) {
        Some((n, _)) => format!("SIG{n}"),
        None => format!("SIG{sig}"),
    }
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise
    // and update the local set we pass by pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block `sigs` in the calling thread (and threads it starts later), so
/// that one thread can take them with `wait_signal`.
pub fn block_signals(sigs: &[i32]) -> io::Result<()> {
    let set = sigset(sigs);
    // SAFETY: pthread_sigmask reads the set we built; no old set wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Wait for one of `sigs` (which must be blocked) and return it.
pub fn wait_signal(sigs: &[i32]) -> io::Result<i32> {
    let set = sigset(sigs);
    let mut sig = 0;
    // SAFETY: sigwait reads the set and writes the signal number.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(sig)
}

/// Our own executable, for re-exec as the supervisor.
pub fn self_exe() -> io::Result<CString> {
    let p = std::fs::read_link("/proc/self/exe").or_else(|_| std::env::current_exe())?;
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "exe path has NUL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_round_trip() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("15"), Some(15));
        assert_eq!(parse_signal("HUP"), Some(libc::SIGHUP));
        assert_eq!(parse_signal("BOGUS"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("999"), None);
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        for n in signal_names() {
            let s = parse_signal(n).unwrap();
            assert_eq!(signal_name(s), format!("SIG{n}"));
        }
    }

    #[test]
    fn lock_excludes_second_description() {
        let dir = std::env::temp_dir().join(format!("ae-sys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("lock");
        let a = File::create(&p).unwrap();
        let b = File::open(&p).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        assert!(!try_lock_exclusive(&b).unwrap());
        unlock(&a).unwrap();
        assert!(try_lock_exclusive(&b).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn random_is_random() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        random_bytes(&mut a).unwrap();
        random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
