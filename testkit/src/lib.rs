//! Test support for shmdeque, shared by the library's and the tools' test suites, the benchmark harness and
//! the fuzz target.
//!
//! * [`Name`]: a unique segment name, removed when the test ends however it ends.
//! * [`Kid`]: this test binary re-executed in a role (see [`ROLE`]), killed and reaped when dropped.
//! * [`Watchdog`]: turns a hang anywhere in a test, even inside a library call, into a failure that first
//!   kills every child and removes every segment this test process registered.
//! * [`Log`]: an append-only record file, one `write` per record, through which a child reports what it did,
//!   so that a SIGKILL between two records loses nothing that the parent's exact checks need.
//! * [`Rng`]: a small seeded generator, so that a failing run can be repeated from its printed seed.

pub mod hostile_input;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Environment variable that tells a re-executed test binary which role to play.
pub const ROLE: &str = "SHMDEQUE_TEST_ROLE";
/// Environment variable carrying the parent's pid, so that a child can tell it was orphaned.
const PARENT: &str = "SHMDEQUE_TEST_PARENT";
/// A child still alive after this long exits on its own, whatever its parent does.
const CHILD_LIFETIME: Duration = Duration::from_secs(900);

/// What a watchdog cleans up when it fires: every live child and every segment of this test process.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every registered child and removes every registered segment (the watchdog's last act).
fn clean_everything() {
    for &pid in lock(&PIDS).iter() {
        // SAFETY: plain kill(2) on a pid this process spawned and has not reaped (a reaped child is
        // unregistered first), so the pid cannot have been reused by an unrelated process.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    for name in lock(&NAMES).iter() {
        let _ = shmdeque::remove(name);
    }
}

/// Reads a `usize` knob from the environment, with a default.
pub fn env_usize(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// A unique segment name (pid, test, counter), removed when dropped.
pub struct Name(String);

impl Name {
    pub fn new(test: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("shmdeque-t-{}-{}-{}", std::process::id(), test, N.fetch_add(1, Ordering::Relaxed));
        let _ = shmdeque::remove(&name);
        lock(&NAMES).push(name.clone());
        Name(name)
    }

    /// Takes charge of a name built by the test (registered and removed like any other).
    pub fn from_existing(name: String) -> Name {
        let _ = shmdeque::remove(&name);
        lock(&NAMES).push(name.clone());
        Name(name)
    }

    /// The segment file.
    pub fn path(&self) -> PathBuf {
        Path::new("/dev/shm").join(&self.0)
    }

    pub fn exists(&self) -> bool {
        self.path().exists()
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmdeque::remove(&self.0);
        lock(&NAMES).retain(|n| n != &self.0);
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A scratch directory for record files, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shmdeque-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        Scratch(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process: this test binary re-executed to run only `entry` (a `#[test]` that does nothing unless
/// [`ROLE`] is set). Killed and reaped when dropped.
pub struct Kid {
    child: Child,
    pub pid: u32,
    status: Option<ExitStatus>,
    label: String,
}

impl Kid {
    /// Starts `entry` of this test binary in `role`, with extra environment variables.
    pub fn spawn(entry: &str, role: &str, envs: &[(&str, String)]) -> Kid {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", entry, "--nocapture", "--test-threads=1"]).env(ROLE, role);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Kid::start(cmd, role)
    }

    /// Starts an arbitrary command as a registered child (stdout discarded, stderr inherited).
    pub fn start(mut cmd: Command, label: &str) -> Kid {
        cmd.env(PARENT, std::process::id().to_string()).stdin(Stdio::null()).stdout(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {label}: {e}"));
        let pid = child.id();
        lock(&PIDS).push(pid);
        Kid { child, pid, status: None, label: label.to_owned() }
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
        lock(&PIDS).retain(|&p| p != self.pid);
    }

    /// Waits for the child to end, failing the test if it does not within `limit`.
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

    /// Waits for the child and asserts that it exited with status 0.
    pub fn finish(&mut self, limit: Duration) {
        let s = self.wait(limit);
        assert!(s.success(), "{} (pid {}) ended with {s}", self.label, self.pid);
    }

    /// SIGKILLs the child and reaps it: once this returns, the kernel has released everything the child held
    /// (its robust mutexes are marked owner-dead).
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(s) = self.try_status() {
            return s;
        }
        let _ = self.child.kill();
        let s = self.child.wait().expect("reap child");
        self.reaped(s);
        s
    }

    /// Whether the child was killed by a signal, and which.
    pub fn signal(&mut self) -> Option<i32> {
        self.try_status().and_then(|s| s.signal())
    }

    /// Whether thread `tid` of the child is asleep in a futex system call (blocked on a wait word or the lock).
    pub fn in_futex_wait(&self, tid: u32) -> bool {
        let path = format!("/proc/{}/task/{tid}/syscall", self.pid);
        std::fs::read_to_string(path).is_ok_and(|s| s.starts_with(&format!("{} ", libc::SYS_futex)))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Set up a child process: die with the parent, and never outlive [`CHILD_LIFETIME`].
pub fn child_init() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Orphaned before the death signal was armed? (The test process may be a grandparent, through strace or
    // setpriv, so check that it lives rather than that it is the parent.)
    if let Ok(p) = std::env::var(PARENT).map(|p| p.parse::<libc::pid_t>().unwrap_or(0))
        // SAFETY: kill with signal 0 only checks that the process exists (EPERM: it does, as another user).
        && unsafe { libc::kill(p, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
    {
        std::process::exit(120);
    }
    thread::spawn(|| {
        thread::sleep(CHILD_LIFETIME);
        std::process::exit(124);
    });
}

/// The calling thread's kernel id, as /proc/PID/task names it.
pub fn gettid() -> u32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Fails the test (after killing every child and removing every segment) if it is not dropped within the
/// limit: the only way out of a hang inside a library call.
pub struct Watchdog {
    tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(what: &str, limit: Duration) -> Watchdog {
        let (tx, rx) = channel::<()>();
        let what = what.to_owned();
        let thread = thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("WATCHDOG: {what} still running after {limit:?}: a hang; killing children and failing");
                clean_everything();
                std::process::exit(101);
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
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// One record of a [`Log`]: a kind byte and two numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    pub kind: u8,
    pub a: u64,
    pub b: u64,
}

/// Bytes per record: `K aaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbb\n`.
const REC_LEN: usize = 36;

/// An append-only record file. Each record is one `write(2)` of [`REC_LEN`] bytes, so when the writer is
/// SIGKILLed every record it completed is in the file and at most the last one is missing.
pub struct Log(File);

impl Log {
    pub fn create(path: &Path) -> Log {
        let f = OpenOptions::new().create(true).append(true).open(path).expect("open record file");
        Log(f)
    }

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
pub struct Rng(u64);

impl Rng {
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

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// The path of one of the workspace's tools (`producer`, `consumer`, `shmdeque`) from the same build as the
/// running test: the test executable lives in `target/PROFILE/deps/`, the tools in `target/PROFILE/`. Cargo
/// builds them whenever the tools' package is tested too, as `cargo test` from the workspace root does.
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
