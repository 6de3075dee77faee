//! Test support for shmdeque: the one place for the helpers that the library's and the tools' test suites, the
//! benchmark harness (`shmdeque bench`), the criterion benches and the fuzz target share.
//!
//! * [`Name`]: a unique segment name, removed when dropped, however the test or run ends.
//! * [`Scratch`]: a unique temporary directory, removed when dropped.
//! * [`ShmPrefix`]: a unique prefix for another library's files in /dev/shm, all removed when dropped.
//! * [`Kid`]: a child process, killed and reaped when dropped. It may be this test binary re-executed to play a
//!   role ([`Kid::spawn`], [`ROLE`]), this executable started again with whatever arguments and environment the
//!   caller sets ([`Kid::this_exe`], for children that are not test-harness children), or any command
//!   ([`Kid::start`]). A child that calls [`child_init`] dies with its parent.
//! * [`Watchdog`]: turns a hang anywhere, even inside a library call, into a failure that first kills every
//!   child and removes every segment and scratch directory this process registered ([`clean_up_all`]).
//! * [`Log`]: an append-only record file, one `write` per record, through which a child reports what it did,
//!   so that a SIGKILL between two records loses nothing that the parent's exact checks need.
//! * [`Rng`]: a small seeded generator, so that a failing run can be repeated from its printed seed.
//! * [`redis_server`]: real `redis-server` processes and clusters for the Redis backend's tests.
//!
//! Names, scratch directories and children enter process-wide registries when they are made and leave them when
//! they are dropped: that is what lets a watchdog, or a panic hook in a process that aborts without running
//! destructors, clean up after everything still alive.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod hostile_input;
pub mod redis_server;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender, channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Environment variable that tells a re-executed test binary which role to play.
pub const ROLE: &str = "SHMDEQUE_TEST_ROLE";
/// Environment variable carrying the parent's pid, so that a child can tell it was orphaned.
const PARENT: &str = "SHMDEQUE_TEST_PARENT";
/// A child still alive after this long exits on its own, whatever its parent does.
const CHILD_LIFETIME: Duration = Duration::from_secs(900);
/// Where Linux keeps POSIX shared-memory objects (glibc's `shm_open` opens `/dev/shm/NAME`).
const SHM_DIR: &str = "/dev/shm";

// ---------------------------------------------------------------------------------------------------------
// What a watchdog cleans up

/// The live things of one kind that [`clean_up_all`] kills or removes; each leaves the list when dropped.
struct Registry<T>(Mutex<Vec<T>>);

impl<T: PartialEq> Registry<T> {
    const fn new() -> Self {
        Registry(Mutex::new(Vec::new()))
    }

    /// The list; a panic elsewhere while it was locked does not make it unusable for the clean-up.
    fn list(&self) -> MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, item: T) {
        self.list().push(item);
    }

    fn forget(&self, item: &T) {
        self.list().retain(|x| x != item);
    }
}

static CHILDREN: Registry<u32> = Registry::new();
static SEGMENTS: Registry<String> = Registry::new();
static SCRATCH: Registry<PathBuf> = Registry::new();
static PREFIXES: Registry<String> = Registry::new();

/// Kills every registered child and removes every registered segment and scratch directory: what a
/// [`Watchdog`] does before it ends the process, and what a panic hook can do in a process that aborts without
/// running destructors (the fuzz target).
pub fn clean_up_all() {
    for &pid in CHILDREN.list().iter() {
        // SAFETY: plain kill(2) on a pid this process spawned and has not reaped (a reaped child is
        // unregistered first), so the pid cannot have been reused by an unrelated process.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    for name in SEGMENTS.list().iter() {
        remove_segment(name);
    }
    for dir in SCRATCH.list().iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
    for prefix in PREFIXES.list().iter() {
        remove_prefixed(prefix);
    }
}

/// `PREFIX-PID-WHAT-N`: unique to this process and call.
fn unique(prefix: &str, what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{what}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------------------
// Segment names and scratch directories

/// The file behind the segment (or any POSIX shared-memory object) called `name`.
pub fn segment_path(name: &str) -> PathBuf {
    Path::new(SHM_DIR).join(name)
}

/// Removes the segment `name` as the library does, then its file if that is still there: a file of another
/// transport, which a library that checks what it removes would leave.
fn remove_segment(name: &str) {
    let _ = shmdeque::remove(name);
    let _ = std::fs::remove_file(segment_path(name));
}

/// A unique segment name, removed when dropped and by a [`Watchdog`] that fires, so that nothing stays in
/// /dev/shm however a test or run ends. Any other file of that name in /dev/shm goes the same way: the
/// benchmark harness names the ring files of other shared-memory transports with it.
#[derive(Debug)]
pub struct Name(String);

impl Name {
    /// `shmdeque-t-PID-TEST-N`: unique to this process, test and call.
    pub fn new(test: &str) -> Name {
        Name::unique("shmdeque-t", test)
    }

    /// `PREFIX-PID-WHAT-N`, for names that must say whose they are (`shmdeque bench` checks that nothing with
    /// its prefix and pid is left behind).
    pub fn unique(prefix: &str, what: &str) -> Name {
        Name::from_existing(unique(prefix, what))
    }

    /// Takes charge of a name built by the caller: removes any segment of that name now, then registers and
    /// removes it like any other.
    pub fn from_existing(name: String) -> Name {
        remove_segment(&name);
        SEGMENTS.add(name.clone());
        Name(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segment file.
    pub fn path(&self) -> PathBuf {
        segment_path(&self.0)
    }

    /// Whether the segment file exists.
    pub fn exists(&self) -> bool {
        self.path().exists()
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        remove_segment(&self.0);
        SEGMENTS.forget(&self.0);
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A unique temporary directory (record files, outputs), removed with its contents when dropped and by a
/// [`Watchdog`] that fires.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates `$TMPDIR/shmdeque-PID-TEST-N`.
    ///
    /// # Panics
    /// If the directory cannot be created.
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(unique("shmdeque", test));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        SCRATCH.add(dir.clone());
        Scratch(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path of a file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        SCRATCH.forget(&self.0);
    }
}

/// Every file in /dev/shm whose name starts with a prefix, removed when dropped and by a [`Watchdog`] that
/// fires: for another library's shared-memory files, whose names it makes up itself (the criterion suite gives
/// iceoryx2 a prefix of its own this way).
#[derive(Debug)]
pub struct ShmPrefix(String);

impl ShmPrefix {
    /// `PREFIX-PID-WHAT-N-`: unique to this process and call. Files with it are removed now, then registered.
    pub fn unique(prefix: &str, what: &str) -> ShmPrefix {
        let prefix = format!("{}-", unique(prefix, what));
        remove_prefixed(&prefix);
        PREFIXES.add(prefix.clone());
        ShmPrefix(prefix)
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The names in /dev/shm that start with the prefix now.
    pub fn files(&self) -> Vec<String> {
        prefixed(&self.0)
    }
}

impl Drop for ShmPrefix {
    fn drop(&mut self) {
        remove_prefixed(&self.0);
        PREFIXES.forget(&self.0);
    }
}

fn prefixed(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(prefix)).collect()
}

fn remove_prefixed(prefix: &str) {
    for name in prefixed(prefix) {
        let _ = std::fs::remove_file(segment_path(&name));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Children

/// A child process, registered while it lives and killed and reaped when dropped, so that a failing test or run
/// leaves nothing running.
#[derive(Debug)]
pub struct Kid {
    child: Child,
    /// The child's process id.
    pub pid: u32,
    status: Option<ExitStatus>,
    label: String,
    /// Lines of stdout, once [`Kid::await_line`] took it.
    lines: Option<mpsc::Receiver<String>>,
    feeder: Option<JoinHandle<()>>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// The arguments that make a Rust test binary run only the test `entry`, its output shown, on one thread.
fn harness_args(entry: &str) -> [&str; 4] {
    ["--exact", entry, "--nocapture", "--test-threads=1"]
}

fn test_exe() -> PathBuf {
    std::env::current_exe().expect("the test executable's path")
}

/// A command in `role`, stdin and stdout closed (a test binary prints its harness's chatter there).
fn in_role(mut cmd: Command, role: &str) -> Command {
    cmd.env(ROLE, role).stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

fn read_to_end(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

impl Kid {
    /// The command that starts this test binary again to run only the `#[test]` function `entry` (one that
    /// does nothing unless [`ROLE`] is set) in `role`; stdin and stdout closed, stderr inherited. Add the
    /// role's environment, then [`Kid::start`] it.
    pub fn role_command(entry: &str, role: &str) -> Command {
        let mut cmd = Command::new(test_exe());
        cmd.args(harness_args(entry));
        in_role(cmd, role)
    }

    /// As [`Kid::role_command`], run by `wrapper` (`strace ...`, `setpriv ...`): the test binary and its
    /// arguments follow the wrapper's own.
    pub fn role_command_under(mut wrapper: Command, entry: &str, role: &str) -> Command {
        wrapper.arg(test_exe()).args(harness_args(entry));
        in_role(wrapper, role)
    }

    /// A command that starts this executable again, for children that are not test-harness children (the
    /// benchmark harness's): arguments, environment and standard streams are the caller's to set; then
    /// [`Kid::try_start`].
    ///
    /// # Errors
    /// If the path of this executable cannot be found.
    pub fn this_exe() -> io::Result<Command> {
        Ok(Command::new(std::env::current_exe()?))
    }

    /// Starts the `#[test]` function `entry` of this test binary in `role`, with extra environment variables.
    pub fn spawn(entry: &str, role: &str, envs: &[(&str, String)]) -> Kid {
        let mut cmd = Kid::role_command(entry, role);
        cmd.envs(envs.iter().map(|(k, v)| (k, v)));
        Kid::start(cmd, role)
    }

    /// Starts `cmd` as a registered child, its standard streams as `cmd` sets them; `label` names it in
    /// failures.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn start(cmd: Command, label: &str) -> Kid {
        Kid::try_start(cmd, label).unwrap_or_else(|e| panic!("spawning {label}: {e}"))
    }

    /// As [`Kid::start`], for programs that report a failure to start instead of panicking.
    ///
    /// # Errors
    /// The spawn's.
    pub fn try_start(mut cmd: Command, label: &str) -> io::Result<Kid> {
        let child = cmd.env(PARENT, std::process::id().to_string()).spawn()?;
        let pid = child.id();
        CHILDREN.add(pid);
        Ok(Kid {
            child,
            pid,
            status: None,
            label: label.to_owned(),
            lines: None,
            feeder: None,
            stdout: None,
            stderr: None,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the child is called in failures.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The parent's end of the child's stdin, if it was piped and not yet taken.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The parent's end of the child's stdout, if it was piped and not yet taken.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Writes `input` to the child's piped stdin from a thread, then closes it. A child that stops reading
    /// early (an error exit) makes the write fail, which is not an error here. [`Kid::output`] joins the thread.
    ///
    /// # Panics
    /// If stdin was not piped or was taken.
    pub fn feed(&mut self, input: Vec<u8>) {
        let mut stdin = self.take_stdin().expect("feed: the child's stdin is piped");
        self.feeder = Some(thread::spawn(move || {
            let _ = stdin.write_all(&input);
        }));
    }

    /// Reads the child's piped stdout and stderr (those not taken) to their ends from threads, from now on, so
    /// that the child never blocks on a full pipe; [`Kid::output`] hands over what they read. Start it before
    /// waiting for anything the child must do.
    pub fn capture(&mut self) {
        self.stdout = self.child.stdout.take().map(read_to_end);
        self.stderr = self.child.stderr.take().map(read_to_end);
    }

    /// Waits until the child prints a line that ends with `line` on its piped stdout (its "I am in position"
    /// signal; the test harness may have printed on the same line before it). Lines are read from a thread from
    /// the first call on.
    ///
    /// # Panics
    /// If no such line comes within `limit`, or stdout was not piped.
    pub fn await_line(&mut self, line: &str, limit: Duration) {
        if self.lines.is_none() {
            let out = self.take_stdout().expect("await_line: the child's stdout is piped");
            let (tx, rx) = channel();
            thread::spawn(move || {
                for l in BufReader::new(out).lines() {
                    let Ok(l) = l else { break };
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
            self.lines = Some(rx);
        }
        let lines = self.lines.as_ref().expect("set above");
        let deadline = Instant::now() + limit;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if l.trim_end().ends_with(line) => return,
                Ok(_) => {}
                Err(_) => panic!("{} (pid {}) never printed {line:?} (waited up to {limit:?})", self.label, self.pid),
            }
        }
    }

    /// The exit status if the child has ended (and reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.reaped(s);
        }
        self.status
    }

    fn reaped(&mut self, s: ExitStatus) {
        self.status = Some(s);
        CHILDREN.forget(&self.pid);
    }

    /// Waits for the child to end, failing the test if it does not within `limit`.
    ///
    /// # Panics
    /// If the child still runs after `limit` (dropping the `Kid` then kills it).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            assert!(start.elapsed() < limit, "{} (pid {}) did not finish within {limit:?}", self.label, self.pid);
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to end however long it takes: for programs, where a [`Watchdog`] bounds the run.
    ///
    /// # Errors
    /// `waitpid`'s.
    pub fn wait_unbounded(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = self.child.wait()?;
        self.reaped(s);
        Ok(s)
    }

    /// Waits for the child and asserts that it exited with status 0.
    ///
    /// # Panics
    /// As [`Kid::wait`], and if the child failed.
    pub fn finish(&mut self, limit: Duration) {
        let s = self.wait(limit);
        assert!(s.success(), "{} (pid {}) ended with {s}", self.label, self.pid);
    }

    /// Waits for the child as [`Kid::wait`] does, then returns its status with what [`Kid::capture`] read
    /// (nothing where nothing was captured).
    ///
    /// # Panics
    /// As [`Kid::wait`].
    pub fn output(&mut self, limit: Duration) -> Output {
        let status = self.wait(limit);
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
        let join = |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Output { status, stdout: join(self.stdout.take()), stderr: join(self.stderr.take()) }
    }

    /// SIGKILLs the child and reaps it: once this returns, the kernel has released everything the child held
    /// (its robust mutexes are marked owner-dead).
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(s) = self.try_status() {
            return s;
        }
        let _ = self.child.kill();
        self.wait_unbounded().expect("reap child")
    }

    /// Sends `signal` to the child.
    ///
    /// # Panics
    /// If the child was reaped already (its pid may name another process by now), or kill(2) fails.
    pub fn send_signal(&self, signal: i32) {
        assert!(self.status.is_none(), "{} (pid {}) was reaped already: no signal {signal}", self.label, self.pid);
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is this process's child, not reaped
        // (checked above), so it names no other process.
        let r = unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        assert_eq!(r, 0, "signal {signal} to {}: {}", self.label, io::Error::last_os_error());
    }

    /// Whether the child was killed by a signal, and which.
    pub fn signal(&mut self) -> Option<i32> {
        self.try_status().and_then(|s| s.signal())
    }

    /// Whether thread `tid` of the child is asleep in a futex system call (blocked on a wait word or the lock).
    pub fn in_futex_wait(&self, tid: u32) -> bool {
        in_futex_wait(self.pid, tid)
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sets up a child process: it dies with the parent, and never outlives [`CHILD_LIFETIME`]. Call it first
/// thing in a child's role. PR_SET_PDEATHSIG fires when the parent *thread* that started the child ends: for a
/// test, its test thread, so a child never outlives its test.
pub fn child_init() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Orphaned before the death signal was armed? (The test process may be a grandparent, through strace or
    // setpriv, so check that it lives rather than that it is the parent. A child that is pid 1 of a PID
    // namespace of its own, whose parent is outside it (getppid 0), cannot see the test process's pid.)
    // SAFETY: getppid cannot fail.
    let parent_visible = unsafe { libc::getppid() } != 0;
    if parent_visible
        && let Ok(p) = std::env::var(PARENT).map(|p| p.parse::<libc::pid_t>().unwrap_or(0))
        // SAFETY: kill with signal 0 only checks that the process exists (EPERM: it does, as another user).
        && unsafe { libc::kill(p, 0) } != 0
        && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
    {
        std::process::exit(120);
    }
    thread::spawn(|| {
        thread::sleep(CHILD_LIFETIME);
        std::process::exit(124);
    });
}

/// Prints `line` on stdout and flushes it: how a child tells its test (through [`Kid::await_line`]) that it
/// reached a point.
///
/// # Panics
/// If stdout is closed.
pub fn say(line: &str) {
    let mut out = io::stdout();
    writeln!(out, "{line}").expect("writing to the test");
    out.flush().expect("writing to the test");
}

/// The calling thread's kernel id, as /proc/PID/task names it.
pub fn gettid() -> u32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() as u32 }
}

// ---------------------------------------------------------------------------------------------------------
// Hangs

/// Ends the process if it is not dropped within its limit, after [`clean_up_all`]: the only way out of a hang
/// inside a library call, and for a parent blocked on a transport that a hung child should have served.
#[derive(Debug)]
pub struct Watchdog {
    tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// For a test: if `what` still runs after `limit`, says so on stderr, cleans up and exits with status 101,
    /// as a failed test binary does.
    pub fn new(what: &str, limit: Duration) -> Watchdog {
        let message = format!("WATCHDOG: {what} still running after {limit:?}: a hang; killing children and failing");
        Watchdog::exiting(limit, 101, message)
    }

    /// For any program: if not dropped within `limit`, prints `message` on stderr, cleans up and exits with
    /// `code`.
    pub fn exiting(limit: Duration, code: i32, message: String) -> Watchdog {
        let (tx, rx) = channel::<()>();
        let thread = thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("{message}");
                clean_up_all();
                std::process::exit(code);
            }
        });
        Watchdog { tx: Some(tx), thread: Some(thread) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `cond` every millisecond, failing the test with `what` if it does not hold within `limit`.
pub fn wait_until(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    wait_until_every(what, limit, Duration::from_millis(1), cond);
}

/// As [`wait_until`], polling every `every`: for conditions that are costly to check (a tool run per check).
///
/// # Panics
/// If `cond` does not hold within `limit`.
pub fn wait_until_every(what: &str, limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Records, random numbers, knobs, tools

/// Reads a `usize` knob from the environment, with a default.
///
/// # Panics
/// If the variable is set but not a number.
pub fn env_usize(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// One record of a [`Log`]: a kind byte and two numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    /// What the record says (the caller's code, an ASCII letter).
    pub kind: u8,
    /// The first number.
    pub a: u64,
    /// The second number.
    pub b: u64,
}

/// Bytes per record: `K aaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbb\n`.
const REC_LEN: usize = 36;

/// An append-only record file. Each record is one `write(2)` of [`REC_LEN`] bytes, so when the writer is
/// SIGKILLed every record it completed is in the file and at most the last one is missing.
#[derive(Debug)]
pub struct Log(File);

impl Log {
    /// Opens `path` for appending, creating it if needed.
    pub fn create(path: &Path) -> Log {
        let f = OpenOptions::new().create(true).append(true).open(path).expect("open record file");
        Log(f)
    }

    /// Appends one record (`kind` an ASCII letter).
    pub fn rec(&self, kind: u8, a: u64, b: u64) {
        let mut buf = [0u8; REC_LEN];
        let s = format!("{} {a:016x} {b:016x}\n", kind as char);
        buf.copy_from_slice(s.as_bytes());
        (&self.0).write_all(&buf).expect("append record");
    }

    /// Every complete record in a file (none if the file does not exist).
    pub fn read(path: &Path) -> Vec<Rec> {
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes
            .chunks_exact(REC_LEN)
            .map(|c| {
                let num = |r: std::ops::Range<usize>| {
                    u64::from_str_radix(std::str::from_utf8(&c[r]).expect("record is text"), 16).expect("record hex")
                };
                Rec { kind: c[0], a: num(2..18), b: num(19..35) }
            })
            .collect()
    }

    /// How many records of `kind` a file holds.
    pub fn count(path: &Path, kind: u8) -> usize {
        Log::read(path).iter().filter(|r| r.kind == kind).count()
    }
}

/// splitmix64: small, seedable, good enough to pick scenarios and delays.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that starts from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the environment variable `var` if set, else from the clock; prints the seed.
    pub fn from_env(var: &str) -> Rng {
        let seed = std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        eprintln!("seed: {var}={seed}");
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True once in `one_in` calls, on average.
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Whether thread `tid` of process `pid` is asleep in a futex system call: `futex` (a lock or a wait word
/// alone) or `futex_waitv` (a wait word and the handle's interrupt word).
pub fn in_futex_wait(pid: u32, tid: u32) -> bool {
    let path = format!("/proc/{pid}/task/{tid}/syscall");
    std::fs::read_to_string(path).is_ok_and(|s| {
        let nr = s.split_whitespace().next().and_then(|n| n.parse::<libc::c_long>().ok());
        nr == Some(libc::SYS_futex) || nr == Some(libc::SYS_futex_waitv)
    })
}

/// The path of one of the workspace's tools (`producer`, `consumer`, `shmdeque`) from the same build as the
/// running test: the test executable lives in `target/PROFILE/deps/`, the tools in `target/PROFILE/`. Cargo
/// builds them whenever the tools' package is tested too, as `cargo test` from the workspace root does.
///
/// # Panics
/// If the tool is not built.
pub fn tool(name: &str) -> &'static str {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the test executable's directory");
    let dir = if dir.ends_with("deps") { dir.parent().unwrap_or(dir) } else { dir };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests from the workspace root (`cargo test --release`), which builds the tools",
        path.display()
    );
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}
