//! What the command-line tools (`producer`, `consumer` and `shmdeque`) share, so that the binaries stay thin
//! and agree with each other: the exit codes, turning errors into one line and an exit code, the interrupt
//! flag, the stderr summary line, progress bars and argument parsing helpers.
//!
//! Programs that use the deque as a library do not need this module.

use std::ffi::OsStr;
use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmdeque::{Error, PopError};

/// The exit codes of the three tools.
pub mod exit {
    /// Success.
    pub const SUCCESS: u8 = 0;
    /// A runtime failure, including a message that failed `--verify`.
    pub const FAILURE: u8 = 1;
    /// Bad usage or input: bad flags, a bad or unknown deque, an oversize line, a closed deque.
    pub const USAGE: u8 = 2;
    /// A `--timeout` (or `--wait`) expired.
    pub const TIMEOUT: u8 = 3;
    /// Stopped by SIGINT or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit-code table every tool shows at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    runtime failure, including a message that fails --verify
  2    bad usage or input: bad flags, unknown or closed deque, geometry mismatch, oversize line
  3    timeout: --timeout expired
  130  interrupted by SIGINT or SIGTERM";

/// How long one blocking call waits before the tools check an expired `--timeout` (and their other
/// bookkeeping) again. A signal needs no slice: it interrupts the deque's waits at once (see
/// [`interrupt_on_signal`]).
pub const SLICE: Duration = Duration::from_millis(100);

/// Why a tool stops unsuccessfully: the exit code and the one line it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The process exit code (see [`exit`]).
    pub code: u8,
    /// What went wrong and what to do, without the program's name.
    pub message: String,
}

impl Failure {
    /// A failure with an explicit exit code.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    /// A runtime failure (exit 1).
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure::new(exit::FAILURE, message)
    }

    /// Bad usage or input (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(exit::USAGE, message)
    }

    /// A timeout (exit 3).
    pub fn timeout(message: impl Into<String>) -> Failure {
        Failure::new(exit::TIMEOUT, message)
    }

    /// Stopped by a signal (exit 130).
    pub fn interrupted(message: impl Into<String>) -> Failure {
        Failure::new(exit::INTERRUPTED, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit code for a library error: 2 when the name, the configuration or the segment given is the
/// problem (the user can fix the command line), 1 for everything that goes wrong at run time.
pub fn error_exit_code(e: &Error) -> u8 {
    match e {
        Error::InvalidName { .. }
        | Error::InvalidConfig(_)
        | Error::NotFound { .. }
        | Error::AlreadyExists { .. }
        | Error::NotADeque { .. }
        | Error::ForeignSegment { .. }
        | Error::UntrustedOwner { .. }
        | Error::VersionMismatch { .. }
        | Error::GeometryMismatch { .. }
        | Error::InvalidUrl { .. } => exit::USAGE,
        _ => exit::FAILURE,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        // A Redis operation cut short by SIGINT or SIGTERM while it was reconnecting.
        if matches!(e, Error::Remote { .. }) && interrupted() {
            return Failure::interrupted(e.to_string());
        }
        Failure::new(error_exit_code(&e), e.to_string())
    }
}

impl From<PopError> for Failure {
    fn from(e: PopError) -> Failure {
        match e {
            PopError::Failed(e) => e.into(),
            PopError::Timeout => Failure::timeout("timed out waiting for a message"),
            PopError::Interrupted => Failure::interrupted("interrupted while waiting for a message"),
            PopError::ProducersGone => Failure::runtime(
                "the deque is empty and all its producers are gone without closing it (they died or lost \
                 the server); start a producer, or close the deque",
            ),
            other => Failure::runtime(other.to_string()),
        }
    }
}

/// `--trust-owner USER`: the option of every tool that opens a deque, flattened into its arguments.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct Trust {
    /// Also open a deque whose segment belongs to USER (a name or a numeric id; repeatable). By default only
    /// deques of this process's own user are opened: whoever owns a segment can rewrite what this process
    /// reads and writes there.
    #[arg(long = "trust-owner", value_name = "USER")]
    pub owners: Vec<String>,
}

impl Trust {
    /// `builder`, trusting every user named with --trust-owner.
    ///
    /// # Errors
    /// A usage failure for a user that does not exist.
    pub fn apply(&self, mut builder: shmdeque::Builder) -> Result<shmdeque::Builder, Failure> {
        for user in &self.owners {
            builder = builder.trust_owner(user_id(user)?);
        }
        Ok(builder)
    }

    /// `builder` for the backend `url`: [`apply`](Self::apply)'d for a shared-memory deque; unchanged for
    /// Redis, where a deque has no file owner.
    ///
    /// # Errors
    /// As [`apply`](Self::apply), for a shared-memory URL.
    pub fn apply_for(&self, url: &str, builder: shmdeque::Builder) -> Result<shmdeque::Builder, Failure> {
        if is_shm(url) { self.apply(builder) } else { Ok(builder) }
    }
}

/// The id of the user called `user`, or `user` read as a number.
///
/// # Errors
/// A usage failure if there is no such user.
pub fn user_id(user: &str) -> Result<u32, Failure> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    let unknown = || Failure::usage(format!("--trust-owner {user}: no such user"));
    let c_user = std::ffi::CString::new(user).map_err(|_| unknown())?;
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: a NUL-terminated name, a passwd to fill, a buffer of the
    // length given, and the result pointer; getpwnam_r writes only into them.
    let rc = unsafe { libc::getpwnam_r(c_user.as_ptr(), pwd.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(unknown());
    }
    // SAFETY: on success with a non-null result, getpwnam_r has initialized `pwd`.
    Ok(unsafe { pwd.assume_init() }.pw_uid)
}

/// Prints `program: message` for a failure and turns the outcome into the process exit code.
pub fn finish(program: &str, outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{program}: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Parses the command line. Help and version requests print and exit 0; any other problem prints one line,
/// `program: what is wrong; see 'program --help'`, and exits 2.
pub fn parse_args<P: clap::Parser>(program: &str) -> P {
    match P::try_parse() {
        Ok(p) => p,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let what = match e.kind() {
                // Clap's own text would list the hidden commands too.
                clap::error::ErrorKind::MissingSubcommand => "a command is required".to_owned(),
                _ => one_line(&e.render().to_string()),
            };
            eprintln!("{program}: {what}; see '{program} --help'");
            std::process::exit(exit::USAGE.into())
        }
    }
}

/// The first paragraph of a clap error (what is wrong, without usage and tips) on one line.
fn one_line(rendered: &str) -> String {
    let text: Vec<&str> =
        rendered.lines().map(str::trim).take_while(|l| !l.is_empty() && !l.starts_with("Usage:")).collect();
    let text = text.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}

/// Parses a number of seconds such as `10`, `0.5` or `2.25` (clap value parser).
///
/// # Errors
/// A message for a negative, non-finite or unparsable value.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is not a non-negative, finite number of seconds"))
}

/// Checks a deque name given on the command line: UTF-8 and acceptable to [`shmdeque::check_name`].
///
/// # Errors
/// A usage failure (exit 2) saying what is wrong with the name.
pub fn deque_name(arg: &OsStr) -> Result<String, Failure> {
    let Some(name) = arg.to_str() else {
        return Err(Failure::usage(format!(
            "the deque name {:?} is not valid UTF-8; deque names must be UTF-8 text",
            arg.to_string_lossy()
        )));
    };
    shmdeque::check_name(name)?;
    Ok(name.to_owned())
}

/// The `--url` help shared by every tool.
pub const URL_HELP: &str = "Where the deque lives: shm: (shared memory on this host, the default), \
    redis://HOST[:PORT][/DB], redis+unix:///SOCKET or redis+cluster://HOST:PORT[,HOST:PORT...]; a query string \
    may set heartbeat=SECS, reconnect=SECS, timeout=SECS";

/// The deque an admin verb works on: a name that must exist, where it lives (`--url`), and whose segments
/// to trust (`--trust-owner`). Flattened into `shmdeque info`, `push`, `pop` and `close`.
#[derive(clap::Args, Debug)]
pub struct Existing {
    /// Name of the deque (it must exist).
    pub name: std::ffi::OsString,
    /// Where the deque lives (the help text is [`URL_HELP`]).
    #[arg(long, value_name = "URL", help = URL_HELP)]
    pub url: Option<String>,
    /// Whose segments to trust.
    #[command(flatten)]
    pub trust: Trust,
}

impl Existing {
    /// The checked name.
    ///
    /// # Errors
    /// A usage failure for a name the library refuses.
    pub fn name(&self) -> Result<String, Failure> {
        deque_name(&self.name)
    }

    /// Opens the deque, on either backend, trusting the owners given for a local one.
    ///
    /// # Errors
    /// The library's, as failures with their exit codes.
    pub fn open(&self) -> Result<shmdeque::AnyDeque, Failure> {
        let name = self.name()?;
        let url = backend(&self.url);
        let builder = shmdeque::Builder::new(&name).create_mode(shmdeque::CreateMode::Open);
        Ok(open_url(&self.trust.apply_for(url, builder)?, url)??)
    }
}

/// `builder.open_url(url)`, given up at SIGINT or SIGTERM (once [`catch_interrupts`] is in place): opening
/// a Redis deque keeps reconnecting for the URL's `reconnect` time, and a signal should not have to wait
/// that out. The outer error is the interruption; the inner one the library's.
///
/// # Errors
/// [`Failure::interrupted`] if a signal came while a Redis deque was being opened.
pub fn open_url(builder: &shmdeque::Builder, url: &str) -> Result<Result<shmdeque::AnyDeque, Error>, Failure> {
    if is_shm(url) {
        return Ok(builder.open_url(url));
    }
    // The open runs on a thread of its own: a handle has no interrupter before it exists. If a signal comes
    // first, the thread is left to end with the process.
    let (tx, rx) = std::sync::mpsc::channel();
    let (b, u) = (builder.clone(), url.to_owned());
    std::thread::Builder::new()
        .name("open".into())
        .spawn(move || {
            let _ = tx.send(b.open_url(&u));
        })
        .map_err(|e| Failure::runtime(format!("cannot start a thread: {e}")))?;
    loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(r) => return Ok(r),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !interrupted() => {}
            Err(_) => return Err(Failure::interrupted("interrupted while connecting to the Redis server")),
        }
    }
}

/// The backend URL of `--url`, `shm:` when not given.
pub fn backend(url: &Option<String>) -> &str {
    url.as_deref().unwrap_or("shm:")
}

/// Whether `url` names this host's shared memory: the URLs that `Builder::open_url` opens with `open_raw`.
pub fn is_shm(url: &str) -> bool {
    matches!(url, "" | "shm:" | "shm://")
}

/// Formats a duration in seconds for messages (`1.5 s`).
pub fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// The deque whose waits a signal interrupts (see [`interrupt_on_signal`]).
static INTERRUPTER: std::sync::OnceLock<shmdeque::Interrupter> = std::sync::OnceLock::new();

extern "C" fn on_signal(_signal: libc::c_int) {
    // Atomic stores and a futex wake-up only: what a signal handler may safely do.
    SIGNALLED.store(true, Ordering::SeqCst);
    if let Some(i) = INTERRUPTER.get() {
        i.interrupt();
    }
}

/// Makes SIGINT and SIGTERM interrupt the waits of `q` at once (they return `Interrupted`), besides setting
/// the flag of [`interrupted`]. Call it once, after [`catch_interrupts`] and opening the deque.
pub fn interrupt_on_signal(q: &shmdeque::RawDeque) {
    let _ = INTERRUPTER.set(q.interrupter());
    // A signal that came before the interrupter was in place.
    if interrupted() {
        q.interrupter().interrupt();
    }
}

/// As [`interrupt_on_signal`] for a deque on either backend. On Redis a signal ends a blocked pop or push
/// within one wait slice (100 ms), and a reconnection at its next pause instead of after the URL's
/// `reconnect` time.
pub fn interrupt_any_on_signal(q: &shmdeque::AnyDeque) {
    let _ = INTERRUPTER.set(q.interrupter());
    if interrupted() {
        q.interrupter().interrupt();
    }
}

/// Makes SIGINT and SIGTERM set a flag (see [`interrupted`]) instead of killing the process, so a tool can
/// stop between messages. `SA_RESTART` is left out on purpose: a read of standard input blocked in the
/// kernel returns `EINTR`, so a producer waiting for input notices the signal at once.
///
/// # Errors
/// A runtime failure if the handlers cannot be installed.
pub fn catch_interrupts() -> Result<(), Failure> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are a valid value (no handler, empty
        // flags, and `None` for the optional restorer function pointer).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = 0;
        // SAFETY: `action.sa_mask` is a valid, writable signal set owned by this frame.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialized and its handler only performs an atomic store, which is
        // async-signal-safe; a null pointer for the old action is allowed.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Failure::runtime(format!("cannot install the signal handler: {e}")));
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM has arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

/// A time budget that restarts whenever progress is made: how `--timeout` is enforced.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    limit: Option<Duration>,
    since: Instant,
}

impl Patience {
    /// A budget of `limit` (`None`: unlimited), starting now.
    pub fn new(limit: Option<Duration>) -> Patience {
        Patience { limit, since: Instant::now() }
    }

    /// Starts the budget again (progress was made).
    pub fn reset(&mut self) {
        self.since = Instant::now();
    }

    /// How long the next blocking call may wait: at most [`SLICE`], and `None` once the budget is spent.
    pub fn slice(&self) -> Option<Duration> {
        let Some(limit) = self.limit else { return Some(SLICE) };
        let left = limit.checked_sub(self.since.elapsed()).filter(|d| !d.is_zero())?;
        Some(left.min(SLICE))
    }
}

/// Counts messages and bytes for the summary line, timing from the first message (or [`start`]) to the last.
///
/// [`start`]: Meter::start
#[derive(Debug, Clone, Default)]
pub struct Meter {
    messages: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Meter {
    /// An empty meter; the clock starts at [`start`](Self::start) or at the first [`add`](Self::add).
    pub fn new() -> Meter {
        Meter::default()
    }

    /// Starts the clock now unless it is running.
    pub fn start(&mut self) {
        self.first.get_or_insert_with(Instant::now);
    }

    /// Counts `messages` messages of `bytes` bytes in total, just moved.
    pub fn add(&mut self, messages: u64, bytes: u64) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.messages += messages;
        self.bytes += bytes;
    }

    /// Messages counted.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Bytes counted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Time from the start to the last message.
    pub fn elapsed(&self) -> Duration {
        match (self.first, self.last) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    }

    /// The summary line: `program: N messages, B bytes in S s (R messages/s, T MB/s)`.
    pub fn summary(&self, program: &str) -> String {
        let secs = self.elapsed().as_secs_f64();
        let rate = |x: u64| if secs > 0.0 { x as f64 / secs } else { 0.0 };
        format!(
            "{program}: {} messages, {} bytes in {secs:.3} s ({:.0} messages/s, {:.2} MB/s)",
            self.messages,
            self.bytes,
            rate(self.messages),
            rate(self.bytes) / 1e6
        )
    }
}

/// Reads the message count back from a [`Meter::summary`] line.
pub fn summary_messages(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once(": ")?;
    rest.split_once(" messages, ")?.0.parse().ok()
}

/// A progress bar (or spinner) on stderr, drawn only when stderr is a terminal.
#[derive(Debug)]
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar towards `total` messages, or a spinner when the total is unknown; nothing unless stderr is a
    /// terminal.
    pub fn new(total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let (bar, template) = match total {
            Some(n) => (
                indicatif::ProgressBar::new(n),
                "{wide_bar} {human_pos}/{human_len} messages ({per_sec:0}, {eta} left)",
            ),
            None => (indicatif::ProgressBar::new_spinner(), "{spinner} {human_pos} messages ({per_sec:0})"),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Progress(Some(bar))
    }

    /// A progress display that never draws.
    pub fn hidden() -> Progress {
        Progress(None)
    }

    /// Advances by `n` messages.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Removes the bar from the terminal, before the summary line is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Formats `n` with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs("0"), Ok(Duration::ZERO));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn summary_round_trip() {
        let mut m = Meter::new();
        m.add(3, 30);
        m.add(2, 20);
        let line = m.summary("consumer");
        assert!(line.starts_with("consumer: 5 messages, 50 bytes in "), "{line}");
        assert_eq!(summary_messages(&line), Some(5));
    }

    #[test]
    fn separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn clap_errors_fold_to_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  --name <NAME>\n\n\
                        Usage: producer --name <NAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(one_line(rendered), "the following required arguments were not provided: --name <NAME>");
    }

    #[test]
    fn patience_runs_out() {
        assert_eq!(Patience::new(None).slice(), Some(SLICE));
        assert_eq!(Patience::new(Some(Duration::ZERO)).slice(), None);
        assert!(Patience::new(Some(Duration::from_secs(60))).slice().is_some());
    }
}
