//! The benchmark harness behind `shmdeque bench` and `cargo bench`: transports, and the benchmark bodies
//! written once, generic over a [`Transport`].
//!
//! Every transport does identical work. The same messages ([`Pool`]: distinct [`synth`] messages of the
//! requested size, sent round-robin) go through it in the same number, and the receiver compares every
//! received message byte for byte with the one due at that position, so a lost, duplicated, reordered or
//! damaged message fails the run. Cross-process cases run the other side in a child process: the current
//! executable started again with [`CHILD_ENV`] set, which [`child_spec`] recognizes; it talks to the parent
//! over its stdin and stdout (`ready`, `go`, results) and over the transport under test. Children, segment
//! names and the watchdog that ends a hung run are those of the tests (`shmdeque-testkit`): a child dies with
//! this process, and a hung run kills every child and removes every segment before it fails.
//!
//! Built-in transports ([`Builtin`]): shmdeque one message per call (copying API, and in place), shmdeque in
//! batches of 64 under one lock, and an anonymous pipe and a Unix stream socket, each with one `write`/`read`
//! per message or, batched, 64 length-framed messages copied into one buffer and written with one `write`, read
//! back with reads of [`READ_BUFFER_BYTES`] (what `BufWriter` and `BufReader` do). Every transport gets about
//! [`BUFFER_BYTES`] of buffer; [`Channel::buffers`] says what each one got.
//!
//! Timings are never asserted anywhere: this module measures and reports.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmdeque::{Builder, CreateMode, RawDeque};
use shmdeque_synth as synth;
use shmdeque_testkit::{Kid, Name, Watchdog};

/// Environment variable that makes a process started from the benchmark's executable a benchmark child.
pub const CHILD_ENV: &str = "SHMDEQUE_BENCH_CHILD";
/// Buffer space every transport gets, about: pipe capacity, socket send buffer, deque slots.
pub const BUFFER_BYTES: usize = 1 << 20;
/// Messages per call in the batched variants.
pub const BATCH: usize = 64;
/// The read buffer of the batched pipe and socket, unless one batch is larger. Measured interleaved against a
/// buffer of one batch and one of 1 MiB (64-byte messages, 9 runs each): 64 KiB moved the most through both
/// the pipe (1.36x one batch, 1.15x 1 MiB) and the socket (1.08x, 1.23x).
pub const READ_BUFFER_BYTES: usize = 64 << 10;
/// Message sizes of the throughput comparison.
pub const SIZES: [usize; 5] = [8, 64, 1024, 16 << 10, 64 << 10];
/// Producer id stamped into every benchmark message.
const PRODUCER: u32 = 0xbe7c;
/// How long one child may take before the watchdog ends the run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// The messages of a run: a few distinct messages of one size, sent round-robin, and the reference the
/// receiver compares each received message with.
#[derive(Debug, Clone)]
pub struct Pool {
    msgs: Vec<Vec<u8>>,
    mask: u64,
}

/// The message with sequence number `seq` and `size` bytes: a [`synth`] message, or for sizes below
/// [`synth::MIN_SIZE`] the low hexadecimal digits of `seq`.
pub fn message(seq: u64, size: usize) -> Vec<u8> {
    if size >= synth::MIN_SIZE {
        return synth::make(PRODUCER, seq, size);
    }
    let hex = format!("{seq:016x}{seq:016x}");
    hex.as_bytes()[hex.len() - size..].to_vec()
}

impl Pool {
    /// Distinct messages of `size` bytes, up to 64 of them and about 1 MiB in all.
    pub fn new(size: usize) -> Pool {
        let n = (BUFFER_BYTES / size.max(1)).clamp(4, 64).next_power_of_two();
        let n = if n > 64 { 64 } else { n };
        Pool { msgs: (0..n as u64).map(|i| message(i, size)).collect(), mask: n as u64 - 1 }
    }

    /// The message due at position `i` of the stream.
    #[inline]
    pub fn get(&self, i: u64) -> &[u8] {
        &self.msgs[(i & self.mask) as usize]
    }

    /// Checks that `msg` is exactly the message due at position `i`.
    ///
    /// # Errors
    /// A description of the mismatch.
    #[inline]
    pub fn check(&self, i: u64, msg: &[u8]) -> Result<(), String> {
        if msg == self.get(i) {
            Ok(())
        } else {
            Err(format!("message {i} differs from the one sent ({} bytes received)", msg.len()))
        }
    }
}

/// The sending end of a one-way channel.
pub trait Sender {
    /// Sends one message, blocking while the channel is full.
    ///
    /// # Errors
    /// The transport's failure, as one line.
    fn send(&mut self, msg: &[u8]) -> Result<(), String>;

    /// Sends several messages with as few calls as the transport allows.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    fn send_many(&mut self, msgs: &[&[u8]]) -> Result<(), String> {
        msgs.iter().try_for_each(|m| self.send(m))
    }
}

/// The receiving end of a one-way channel. Received messages are handed to a check in place.
pub trait Receiver {
    /// Receives one message, blocking while there is none, and returns `check`'s verdict on it.
    ///
    /// # Errors
    /// The transport's failure or the check's.
    fn recv(&mut self, check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String>;

    /// Receives between 1 and `max` messages, blocking while there is none; returns how many.
    ///
    /// # Errors
    /// As [`recv`](Self::recv); the first failed check.
    fn recv_many(&mut self, max: usize, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<usize, String> {
        let _ = max;
        self.recv(&mut check).map(|()| 1)
    }
}

/// How to open one end of a channel, here or in a child: a token (descriptor number or name) and, for
/// descriptor-based channels, the descriptor itself.
#[derive(Debug)]
pub struct End {
    /// What [`Transport::open_tx`] / [`Transport::open_rx`] need; passed to a child as text.
    pub token: String,
    /// The descriptor behind the token, if any. A child inherits it; the parent closes its copy after the
    /// spawn.
    pub fd: Option<OwnedFd>,
}

impl End {
    /// An end known by name only.
    pub fn named(token: impl Into<String>) -> End {
        End { token: token.into(), fd: None }
    }

    /// An end backed by a descriptor; the token is its number.
    pub fn fd(fd: OwnedFd) -> End {
        End { token: fd.as_raw_fd().to_string(), fd: Some(fd) }
    }

    /// Moves the token and descriptor out, leaving a copy of the token behind (for the report and cleanup).
    pub fn take(&mut self) -> End {
        End { token: self.token.clone(), fd: self.fd.take() }
    }

    /// Takes ownership of the descriptor a token names: in a child, the inherited one.
    ///
    /// # Errors
    /// If the token is not a descriptor number or the descriptor is not open.
    pub fn take_fd(self) -> Result<OwnedFd, String> {
        if let Some(fd) = self.fd {
            return Ok(fd);
        }
        let n: RawFd = self.token.parse().map_err(|_| format!("bad descriptor token {:?}", self.token))?;
        // SAFETY: fcntl(F_GETFD) only queries the descriptor table.
        if n < 3 || unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
            return Err(format!("descriptor {n} is not open"));
        }
        // SAFETY: the descriptor was inherited for this purpose from the parent; nothing else in this process
        // knows its number, so this becomes its only owner.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    }
}

/// A one-way channel as created, before its ends are opened. Dropping it removes what it created.
#[derive(Debug)]
pub struct Channel {
    /// The sending end.
    pub tx: End,
    /// The receiving end.
    pub rx: End,
    /// The buffer sizes this channel got, for the report.
    pub buffers: String,
    /// The files in /dev/shm it created ([`unique_name`]), removed with the channel or by the watchdog of a
    /// run that hangs.
    pub segments: Vec<Name>,
}

/// A way of moving messages between processes. Benchmark bodies are written once against this trait.
pub trait Transport {
    /// The sending end.
    type Tx: Sender;
    /// The receiving end.
    type Rx: Receiver;

    /// Stable identifier, used to pick the transport again in a child process.
    fn id(&self) -> &'static str;
    /// Human-readable name for reports.
    fn label(&self) -> &'static str;
    /// Messages per send and receive call: 1, or [`BATCH`] for the batched variants.
    fn batch(&self) -> usize {
        1
    }
    /// Creates a one-way channel for messages of `size` bytes; `tag` makes names unique.
    ///
    /// # Errors
    /// The OS or library failure, as one line.
    fn channel(&self, size: usize, tag: &str) -> Result<Channel, String>;
    /// Opens the sending end.
    ///
    /// # Errors
    /// As [`channel`](Self::channel).
    fn open_tx(&self, end: End, size: usize) -> Result<Self::Tx, String>;
    /// Opens the receiving end.
    ///
    /// # Errors
    /// As [`channel`](Self::channel).
    fn open_rx(&self, end: End, size: usize) -> Result<Self::Rx, String>;
}

// ---------------------------------------------------------------------------------------------------------
// shmdeque

/// How the shmdeque transport moves messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmMode {
    /// `push_back` / `pop_front` (the popped message is copied into a new `Vec`).
    Copy,
    /// `push_back_with` / `pop_front_with`: written into and read from the slot in place.
    InPlace,
    /// `push_back_many` / `pop_front_many_with` with [`BATCH`] messages per lock acquisition.
    Batch,
}

/// The shmdeque transport: one deque per direction, about [`BUFFER_BYTES`] of slots.
#[derive(Debug, Clone, Copy)]
pub struct Shm(pub ShmMode);

/// Deque geometry for messages of `size` bytes: (capacity, slot size).
pub fn shm_geometry(size: usize) -> (u32, u32) {
    let slot = (size + shmdeque::SLOT_OVERHEAD).max(8);
    let cap = (BUFFER_BYTES / slot).clamp(16, 1 << 16);
    (cap as u32, slot as u32)
}

/// A name in /dev/shm unique to this process and purpose, `shmdeque-bench-PID-WHAT-TAG-N`: a segment, or
/// another transport's file there. Removed when dropped, and by the watchdog of a run that hangs.
pub fn unique_name(what: &str, tag: &str) -> Name {
    Name::unique("shmdeque-bench", &format!("{what}-{tag}"))
}

/// Sending end of [`Shm`].
#[derive(Debug)]
pub struct ShmTx {
    q: RawDeque,
    mode: ShmMode,
}

/// Receiving end of [`Shm`].
#[derive(Debug)]
pub struct ShmRx {
    q: RawDeque,
    mode: ShmMode,
}

impl Sender for ShmTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        match self.mode {
            ShmMode::InPlace => {
                self.q.push_back_with(msg.len(), |slot| slot.copy_from_slice(msg)).map_err(|e| e.to_string())
            }
            _ => self.q.push_back(msg).map_err(|e| e.to_string()),
        }
    }

    fn send_many(&mut self, msgs: &[&[u8]]) -> Result<(), String> {
        match self.mode {
            ShmMode::Batch => self.q.push_back_many(msgs).map(drop).map_err(|e| e.to_string()),
            _ => msgs.iter().try_for_each(|m| self.send(m)),
        }
    }
}

impl Receiver for ShmRx {
    #[inline]
    fn recv(&mut self, check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        let mut check = check;
        match self.mode {
            ShmMode::Copy => {
                let m = self.q.pop_front().map_err(|e| e.to_string())?;
                check(&m)
            }
            _ => self.q.pop_front_with(check).map_err(|e| e.to_string())?,
        }
    }

    fn recv_many(&mut self, max: usize, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<usize, String> {
        if self.mode != ShmMode::Batch {
            return self.recv(check).map(|()| 1);
        }
        let mut first_err = None;
        let n = self
            .q
            .pop_front_many_with(max, |m| {
                if let Err(e) = check(m) {
                    first_err.get_or_insert(e);
                }
            })
            .map_err(|e| e.to_string())?;
        first_err.map_or(Ok(n), Err)
    }
}

impl Shm {
    fn open(end: &End) -> Result<RawDeque, String> {
        Builder::new(&end.token).create_mode(CreateMode::Open).open_raw().map_err(|e| e.to_string())
    }
}

impl Transport for Shm {
    type Tx = ShmTx;
    type Rx = ShmRx;

    fn id(&self) -> &'static str {
        match self.0 {
            ShmMode::Copy => "shmdeque",
            ShmMode::InPlace => "shmdeque-inplace",
            ShmMode::Batch => "shmdeque-batch",
        }
    }

    fn label(&self) -> &'static str {
        match self.0 {
            ShmMode::Copy => "shmdeque",
            ShmMode::InPlace => "shmdeque in-place",
            ShmMode::Batch => "shmdeque x64",
        }
    }

    fn batch(&self) -> usize {
        if self.0 == ShmMode::Batch { BATCH } else { 1 }
    }

    fn channel(&self, size: usize, tag: &str) -> Result<Channel, String> {
        let name = unique_name("q", tag);
        let (cap, slot) = shm_geometry(size);
        let q = Builder::new(name.as_str())
            .capacity(cap)
            .slot_size(slot)
            .create_mode(CreateMode::CreateExclusive)
            .open_raw()
            .map_err(|e| e.to_string())?;
        drop(q);
        Ok(Channel {
            tx: End::named(name.as_str()),
            rx: End::named(name.as_str()),
            buffers: format!("{cap} slots x {slot} B"),
            segments: vec![name],
        })
    }

    fn open_tx(&self, end: End, _size: usize) -> Result<ShmTx, String> {
        Ok(ShmTx { q: Shm::open(&end)?, mode: self.0 })
    }

    fn open_rx(&self, end: End, _size: usize) -> Result<ShmRx, String> {
        Ok(ShmRx { q: Shm::open(&end)?, mode: self.0 })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pipes and Unix stream sockets

/// Which kind of descriptor a [`Stream`] transport uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// An anonymous pipe (`pipe2`), enlarged with `F_SETPIPE_SZ`.
    Pipe,
    /// A Unix domain stream socket pair, `SO_SNDBUF` raised.
    Socket,
}

/// A byte-stream transport. One message per call sends the bytes with one `write` and reads them with one
/// `read` (both sides know the size, so no framing). The batched variant copies [`BATCH`] messages, each
/// prefixed with its 4-byte length, into one buffer and sends it with one `write`; the reader reads as much as
/// its buffer ([`read_buffer`]) takes and parses frames out of it, keeping a partial frame for the next read.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Pipe or socket.
    pub kind: StreamKind,
    /// Whether to send [`BATCH`] framed messages per call.
    pub batched: bool,
}

/// Sending end of [`Stream`].
#[derive(Debug)]
pub struct StreamTx {
    fd: OwnedFd,
    /// The frames of one batch, laid out contiguously for a single `write`; reused.
    frames: Vec<u8>,
}

/// Receiving end of [`Stream`].
#[derive(Debug)]
pub struct StreamRx {
    file: std::fs::File,
    size: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Bytes of one batch of framed messages of `size` bytes: what the batched stream writes per call.
pub fn batch_bytes(size: usize) -> usize {
    BATCH * (size + 4)
}

/// The batched stream reader's buffer for messages of `size` bytes: [`READ_BUFFER_BYTES`], or one batch if
/// that is larger.
pub fn read_buffer(size: usize) -> usize {
    batch_bytes(size).max(READ_BUFFER_BYTES)
}

fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), String> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of its length for the call.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("write: {e}"));
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

impl Sender for StreamTx {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        write_all(self.fd.as_raw_fd(), msg)
    }

    /// Copies the frames (4-byte little-endian length, then the message) into one buffer and writes it with one
    /// `write`, looping only on a partial write: what `BufWriter` does. A `writev` of two slices per message
    /// moved 3-6 times fewer messages at 8 and 64 B, measured interleaved (presumably the kernel's cost per
    /// slice, half of which are 4 bytes long).
    fn send_many(&mut self, msgs: &[&[u8]]) -> Result<(), String> {
        self.frames.clear();
        for m in msgs {
            self.frames.extend_from_slice(&(m.len() as u32).to_le_bytes());
            self.frames.extend_from_slice(m);
        }
        write_all(self.fd.as_raw_fd(), &self.frames)
    }
}

impl StreamRx {
    /// Reads once into the free end of the buffer; compacts first. Fails on end of stream.
    fn fill(&mut self) -> Result<(), String> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err("the sender closed the stream early".into()),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// The next complete frame's payload range, if the buffer holds one.
    fn frame(&self) -> Result<Option<(usize, usize)>, String> {
        let avail = self.end - self.start;
        if avail < 4 {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = u32::from_le_bytes(len) as usize;
        if len + 4 > self.buf.len() {
            return Err(format!("frame of {len} bytes does not fit the {}-byte buffer", self.buf.len()));
        }
        Ok((avail >= 4 + len).then_some((self.start + 4, len)))
    }
}

impl Receiver for StreamRx {
    #[inline]
    fn recv(&mut self, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        let buf = &mut self.buf[..self.size];
        self.file.read_exact(buf).map_err(|e| format!("read: {e}"))?;
        check(buf)
    }

    fn recv_many(&mut self, max: usize, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<usize, String> {
        let mut frame = self.frame()?;
        while frame.is_none() {
            self.fill()?;
            frame = self.frame()?;
        }
        let mut n = 0;
        let mut result = Ok(());
        while let Some((at, len)) = frame {
            if result.is_ok() {
                result = check(&self.buf[at..at + len]);
            }
            self.start = at + len;
            n += 1;
            if n == max {
                break;
            }
            frame = self.frame()?;
        }
        result.map(|()| n)
    }
}

fn cvt(rc: libc::c_int, what: &str) -> Result<libc::c_int, String> {
    if rc < 0 { Err(format!("{what}: {}", io::Error::last_os_error())) } else { Ok(rc) }
}

fn sockopt(fd: RawFd, opt: libc::c_int) -> Result<usize, String> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes; the kernel writes at most `len` bytes.
    cvt(unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &mut len) }, "getsockopt")?;
    Ok(v as usize)
}

fn set_sockopt(fd: RawFd, opt: libc::c_int, value: usize) -> Result<(), String> {
    let v = value as libc::c_int;
    let len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` is a valid int for the call.
    cvt(unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&raw const v).cast(), len) }, "setsockopt").map(drop)
}

impl Transport for Stream {
    type Tx = StreamTx;
    type Rx = StreamRx;

    fn id(&self) -> &'static str {
        match (self.kind, self.batched) {
            (StreamKind::Pipe, false) => "pipe",
            (StreamKind::Pipe, true) => "pipe-batch",
            (StreamKind::Socket, false) => "socket",
            (StreamKind::Socket, true) => "socket-batch",
        }
    }

    fn label(&self) -> &'static str {
        match (self.kind, self.batched) {
            (StreamKind::Pipe, false) => "pipe",
            (StreamKind::Pipe, true) => "pipe x64",
            (StreamKind::Socket, false) => "unix socket",
            (StreamKind::Socket, true) => "unix socket x64",
        }
    }

    fn batch(&self) -> usize {
        if self.batched { BATCH } else { 1 }
    }

    fn channel(&self, size: usize, _tag: &str) -> Result<Channel, String> {
        let calls = if self.batched {
            format!("; {} per write, reads of {}", bytes(batch_bytes(size)), bytes(read_buffer(size)))
        } else {
            String::new()
        };
        match self.kind {
            StreamKind::Pipe => {
                let (r, w) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
                let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
                // The kernel caps this at /proc/sys/fs/pipe-max-size; the size it granted is reported.
                // SAFETY: plain fcntl on a descriptor we own.
                let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, BUFFER_BYTES as libc::c_int) };
                let got = if got < 0 {
                    // SAFETY: as above.
                    cvt(unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) }, "F_GETPIPE_SZ")?
                } else {
                    got
                };
                Ok(Channel {
                    tx: End::fd(w),
                    rx: End::fd(r),
                    buffers: format!("pipe {}{calls}", bytes(got as usize)),
                    segments: vec![],
                })
            }
            StreamKind::Socket => {
                let (a, b) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
                let (a, b) = (OwnedFd::from(a), OwnedFd::from(b));
                // Best effort: the kernel caps these at net.core.{w,r}mem_max; what it granted is reported.
                let _ = set_sockopt(a.as_raw_fd(), libc::SO_SNDBUF, BUFFER_BYTES);
                let _ = set_sockopt(b.as_raw_fd(), libc::SO_RCVBUF, BUFFER_BYTES);
                let snd = sockopt(a.as_raw_fd(), libc::SO_SNDBUF)?;
                let rcv = sockopt(b.as_raw_fd(), libc::SO_RCVBUF)?;
                Ok(Channel {
                    tx: End::fd(a),
                    rx: End::fd(b),
                    buffers: format!("SO_SNDBUF {} / SO_RCVBUF {}{calls}", bytes(snd), bytes(rcv)),
                    segments: vec![],
                })
            }
        }
    }

    fn open_tx(&self, end: End, size: usize) -> Result<StreamTx, String> {
        let frames = Vec::with_capacity(if self.batched { batch_bytes(size) } else { 0 });
        Ok(StreamTx { fd: end.take_fd()?, frames })
    }

    fn open_rx(&self, end: End, size: usize) -> Result<StreamRx, String> {
        let fd = end.take_fd()?;
        let cap = if self.batched { read_buffer(size) } else { size };
        Ok(StreamRx { file: std::fs::File::from(fd), size, buf: vec![0; cap.max(8)], start: 0, end: 0 })
    }
}

/// `n` bytes in KiB or MiB when round.
pub fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

// ---------------------------------------------------------------------------------------------------------
// The built-in transports

/// The transports this crate benchmarks by itself (ipmpsc lives in `benches/`, a dev-dependency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// A pipe, one message per call.
    Pipe,
    /// A pipe, [`BATCH`] framed messages per `write`.
    PipeBatch,
    /// A Unix stream socket, one message per call.
    Socket,
    /// A Unix stream socket, [`BATCH`] framed messages per `write`.
    SocketBatch,
    /// shmdeque, copying API.
    Shm,
    /// shmdeque, in-place API.
    ShmInPlace,
    /// shmdeque, batches of [`BATCH`].
    ShmBatch,
}

/// Runs `$body` with `$t` bound to the concrete transport of a [`Builtin`]: an enum match, no trait objects.
#[macro_export]
#[doc(hidden)]
macro_rules! with_builtin {
    ($b:expr, |$t:ident| $body:expr) => {{
        use $crate::bench::{Builtin, Shm, ShmMode, Stream, StreamKind};
        match $b {
            Builtin::Pipe => {
                let $t = Stream { kind: StreamKind::Pipe, batched: false };
                $body
            }
            Builtin::PipeBatch => {
                let $t = Stream { kind: StreamKind::Pipe, batched: true };
                $body
            }
            Builtin::Socket => {
                let $t = Stream { kind: StreamKind::Socket, batched: false };
                $body
            }
            Builtin::SocketBatch => {
                let $t = Stream { kind: StreamKind::Socket, batched: true };
                $body
            }
            Builtin::Shm => {
                let $t = Shm(ShmMode::Copy);
                $body
            }
            Builtin::ShmInPlace => {
                let $t = Shm(ShmMode::InPlace);
                $body
            }
            Builtin::ShmBatch => {
                let $t = Shm(ShmMode::Batch);
                $body
            }
        }
    }};
}

impl Builtin {
    /// Every built-in transport, in report order.
    pub const ALL: [Builtin; 7] = [
        Builtin::Pipe,
        Builtin::PipeBatch,
        Builtin::Socket,
        Builtin::SocketBatch,
        Builtin::Shm,
        Builtin::ShmInPlace,
        Builtin::ShmBatch,
    ];

    /// The transport's identifier (see [`Transport::id`]).
    pub fn id(self) -> &'static str {
        with_builtin!(self, |t| t.id())
    }

    /// The transport's label (see [`Transport::label`]).
    pub fn label(self) -> &'static str {
        with_builtin!(self, |t| t.label())
    }

    /// The built-in transport with this identifier.
    pub fn from_id(id: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.id() == id)
    }

    /// Messages per call.
    pub fn batch(self) -> usize {
        with_builtin!(self, |t| t.batch())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Child processes

/// What a child process is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Send `count` messages after `go`.
    Produce,
    /// Receive on one channel and send each message back on the other, `count` times.
    Echo,
    /// Receive one message after `go`, and report the CPU time spent waiting for it.
    Block,
    /// Spin on a core until killed (the "third process" of the contended runs).
    Spin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Produce => "produce",
            Role::Echo => "echo",
            Role::Block => "block",
            Role::Spin => "spin",
        }
    }
}

/// A child's instructions, passed in [`CHILD_ENV`].
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The transport's [`Transport::id`].
    pub transport: String,
    /// What to do.
    pub role: Role,
    /// Message size.
    pub size: usize,
    /// Messages to send or echo.
    pub count: u64,
    /// Token of the end the child sends on (empty if none).
    pub tx: String,
    /// Token of the end the child receives on (empty if none).
    pub rx: String,
}

impl ChildSpec {
    fn encode(&self) -> String {
        format!("{};{};{};{};{};{}", self.transport, self.role.name(), self.size, self.count, self.tx, self.rx)
    }

    fn decode(s: &str) -> Option<ChildSpec> {
        let f: Vec<&str> = s.split(';').collect();
        let [transport, role, size, count, tx, rx] = f[..] else { return None };
        let role = [Role::Produce, Role::Echo, Role::Block, Role::Spin].into_iter().find(|r| r.name() == role)?;
        Some(ChildSpec {
            transport: transport.to_owned(),
            role,
            size: size.parse().ok()?,
            count: count.parse().ok()?,
            tx: tx.to_owned(),
            rx: rx.to_owned(),
        })
    }
}

/// The instructions of this process if it was started as a benchmark child.
pub fn child_spec() -> Option<ChildSpec> {
    std::env::var(CHILD_ENV).ok().and_then(|s| ChildSpec::decode(&s))
}

/// If this process is a benchmark child of a built-in transport, does its part and exits; returns otherwise
/// (including for children of transports it does not know, which the caller may serve with [`serve_child`]).
pub fn maybe_serve_builtin() {
    let Some(spec) = child_spec() else { return };
    if spec.role == Role::Spin {
        serve_child(&Stream { kind: StreamKind::Pipe, batched: false }, &spec);
    }
    if let Some(b) = Builtin::from_id(&spec.transport) {
        with_builtin!(b, |t| serve_child(&t, &spec))
    }
}

/// Does the child's part of a benchmark with transport `t`, then exits the process: status 0 on success,
/// 1 after printing `error: ...` on stdout.
pub fn serve_child<T: Transport>(t: &T, spec: &ChildSpec) -> ! {
    // A child whose parent dies (a hang it could not get out of, a kill) goes with it.
    shmdeque_testkit::child_init();
    let r = child_body(t, spec);
    let mut out = io::stdout().lock();
    let code = match r {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            1
        }
    };
    let _ = out.flush();
    std::process::exit(code)
}

fn say(line: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))
}

fn await_go() -> Result<(), String> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line).map_err(|e| format!("stdin: {e}"))?;
    if line.trim() == "go" { Ok(()) } else { Err("the parent went away".into()) }
}

fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` is valid for writes of a rusage; getrusage fills it on success, and it starts zeroed anyway.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn child_body<T: Transport>(t: &T, spec: &ChildSpec) -> Result<(), String> {
    let size = spec.size;
    match spec.role {
        Role::Spin => {
            say("ready")?;
            // Bounded: a spinner that outlives its parent for some reason stops by itself.
            let until = Instant::now() + Duration::from_secs(600);
            while Instant::now() < until {
                for _ in 0..1000 {
                    std::hint::spin_loop();
                }
            }
            Ok(())
        }
        Role::Produce => {
            let mut tx = t.open_tx(End::named(&spec.tx), size)?;
            let pool = Pool::new(size);
            say("ready")?;
            await_go()?;
            produce(&mut tx, &pool, spec.count, t.batch())?;
            say("done")
        }
        Role::Echo => {
            let mut rx = t.open_rx(End::named(&spec.rx), size)?;
            let mut tx = t.open_tx(End::named(&spec.tx), size)?;
            let mut buf = vec![0u8; size];
            say("ready")?;
            for _ in 0..spec.count {
                rx.recv(|m| {
                    buf.copy_from_slice(m);
                    Ok(())
                })?;
                tx.send(&buf)?;
            }
            say("done")
        }
        Role::Block => {
            let mut rx = t.open_rx(End::named(&spec.rx), size)?;
            let pool = Pool::new(size);
            say("ready")?;
            await_go()?;
            let before = cpu_time();
            rx.recv(|m| pool.check(0, m))?;
            let cpu = cpu_time() - before;
            say(&format!("cpu_ns {}", cpu.as_nanos()))
        }
    }
}

/// Sends messages `0..count` of `pool`, `batch` per call.
///
/// # Errors
/// The transport's failure.
pub fn produce(tx: &mut impl Sender, pool: &Pool, count: u64, batch: usize) -> Result<(), String> {
    if batch <= 1 {
        return (0..count).try_for_each(|i| tx.send(pool.get(i)));
    }
    let mut refs: Vec<&[u8]> = Vec::with_capacity(batch);
    let mut i = 0;
    while i < count {
        let n = (count - i).min(batch as u64);
        refs.clear();
        refs.extend((i..i + n).map(|k| pool.get(k)));
        tx.send_many(&refs)?;
        i += n;
    }
    Ok(())
}

/// Receives and checks messages `0..count` of `pool`, up to `batch` per call.
///
/// # Errors
/// The transport's failure or the first message that is not the one due.
pub fn consume(rx: &mut impl Receiver, pool: &Pool, count: u64, batch: usize) -> Result<(), String> {
    let mut i = 0;
    while i < count {
        if batch <= 1 {
            rx.recv(|m| pool.check(i, m))?;
            i += 1;
        } else {
            let want = (count - i).min(batch as u64) as usize;
            let mut k = i;
            rx.recv_many(want, |m| {
                let r = pool.check(k, m);
                k += 1;
                r
            })?;
            i = k;
        }
    }
    Ok(())
}

/// A running child and the parent's side of its control pipes, under a watchdog. Killed and reaped if dropped
/// early (see [`Kid`]).
struct ChildProc {
    kid: Kid,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Ends a run that hangs: after [`CHILD_TIMEOUT`] kills every child and removes every segment and file of
    /// this process ([`unique_name`]), and exits with an error, since the parent may itself be blocked on the
    /// transport.
    _watchdog: Watchdog,
}

impl ChildProc {
    /// Starts this executable as a child with `spec`, letting it inherit the descriptors of `ends`.
    fn spawn(spec: &ChildSpec, ends: &[&End]) -> Result<ChildProc, String> {
        let mut cmd = Kid::this_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let fds: Vec<RawFd> = ends.iter().filter_map(|e| e.fd.as_ref().map(|f| f.as_raw_fd())).collect();
        cmd.env(CHILD_ENV, spec.encode()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        // SAFETY: the closure runs between fork and exec and only calls fcntl, which is async-signal-safe, on
        // descriptors that are open in the parent and hence in the forked child; it does not allocate.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &fds {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            })
        };
        let mut kid =
            Kid::try_start(cmd, "benchmark child").map_err(|e| format!("cannot start a benchmark child: {e}"))?;
        let hung = format!("error: a benchmark run hung for {} s; stopped it", CHILD_TIMEOUT.as_secs());
        let watchdog = Watchdog::exiting(CHILD_TIMEOUT, 1, hung);
        let stdin = kid.take_stdin();
        let stdout = kid.take_stdout().map(BufReader::new).ok_or("the child has no stdout")?;
        Ok(ChildProc { kid, stdin, stdout, _watchdog: watchdog })
    }

    /// Reads the child's next line; an `error: ...` line or end of file is an error.
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(|e| format!("reading from the child: {e}"))?;
        let line = line.trim_end().to_owned();
        if let Some(e) = line.strip_prefix("error: ") {
            return Err(format!("benchmark child: {e}"));
        }
        if line.is_empty() {
            let status = self.kid.wait_unbounded().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!("the benchmark child ended early ({status})"));
        }
        Ok(line)
    }

    fn expect(&mut self, want: &str) -> Result<(), String> {
        let got = self.line()?;
        if got == want { Ok(()) } else { Err(format!("the benchmark child said {got:?}, expected {want:?}")) }
    }

    fn go(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("the child's stdin is closed")?;
        stdin.write_all(b"go\n").and_then(|()| stdin.flush()).map_err(|e| format!("writing to the child: {e}"))
    }

    /// Waits for a successful exit.
    fn finish(mut self) -> Result<(), String> {
        self.stdin.take();
        let status = self.kid.wait_unbounded().map_err(|e| format!("waiting for the child: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("the benchmark child failed ({status})")) }
    }
}

/// A process spinning on a core until dropped: the "third process" of the contended runs.
pub struct Spinner(ChildProc);

impl Spinner {
    /// Starts the spinner and waits until it runs.
    ///
    /// # Errors
    /// If it cannot be started.
    pub fn start() -> Result<Spinner, String> {
        let spec = ChildSpec {
            transport: "spin".into(),
            role: Role::Spin,
            size: 0,
            count: 0,
            tx: String::new(),
            rx: String::new(),
        };
        let mut c = ChildProc::spawn(&spec, &[])?;
        c.expect("ready")?;
        Ok(Spinner(c))
    }
}

impl std::fmt::Debug for Spinner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Spinner").field(&self.0.kid.pid).finish()
    }
}

fn spec(t: &impl Transport, role: Role, size: usize, count: u64, tx: &End, rx: &End) -> ChildSpec {
    ChildSpec { transport: t.id().to_owned(), role, size, count, tx: tx.token.clone(), rx: rx.token.clone() }
}

fn none() -> End {
    End::named("")
}

/// Cross-process throughput: a child sends `count` messages of `size` bytes, this process receives and checks
/// them. Returns the time from `go` to the last message received, and the channel's buffer sizes.
///
/// # Errors
/// Any failure of the transport, the child or a check.
pub fn throughput<T: Transport>(t: &T, size: usize, count: u64) -> Result<(Duration, String), String> {
    let mut ch = t.channel(size, "tp")?;
    let sp = spec(t, Role::Produce, size, count, &ch.tx, &none());
    let mut child = ChildProc::spawn(&sp, &[&ch.tx])?;
    drop(ch.tx.fd.take());
    let mut rx = t.open_rx(ch.rx.take(), size)?;
    let pool = Pool::new(size);
    child.expect("ready")?;
    let start = Instant::now();
    child.go()?;
    consume(&mut rx, &pool, count, t.batch())?;
    let elapsed = start.elapsed();
    child.expect("done")?;
    child.finish()?;
    drop(rx);
    Ok((elapsed, ch.buffers.clone()))
}

/// Ping-pong: this process sends a message, a child sends it back; `warmup` round trips are not recorded,
/// then each of `count` round trips is timed. Returns the round-trip times.
///
/// # Errors
/// Any failure of the transport, the child or a check.
pub fn round_trips<T: Transport>(t: &T, size: usize, warmup: u64, count: u64) -> Result<Vec<Duration>, String> {
    let mut ping = t.channel(size, "ping")?;
    let mut pong = t.channel(size, "pong")?;
    let total = warmup + count;
    let sp = spec(t, Role::Echo, size, total, &pong.tx, &ping.rx);
    let mut child = ChildProc::spawn(&sp, &[&pong.tx, &ping.rx])?;
    drop(pong.tx.fd.take());
    drop(ping.rx.fd.take());
    let mut tx = t.open_tx(ping.tx.take(), size)?;
    let mut rx = t.open_rx(pong.rx.take(), size)?;
    let pool = Pool::new(size);
    child.expect("ready")?;
    let mut samples = Vec::with_capacity(count as usize);
    let mut last = Instant::now();
    for i in 0..total {
        tx.send(pool.get(i))?;
        rx.recv(|m| pool.check(i, m))?;
        let now = Instant::now();
        if i >= warmup {
            samples.push(now - last);
        }
        last = now;
    }
    child.expect("done")?;
    child.finish()?;
    drop((tx, rx, ping, pong));
    Ok(samples)
}

/// CPU time a child spends blocked in a receive on an empty channel for `wait`, measured with
/// `getrusage` in the child around the receive.
///
/// # Errors
/// Any failure of the transport or the child.
pub fn blocked_cpu<T: Transport>(t: &T, wait: Duration) -> Result<Duration, String> {
    let size = 64;
    let mut ch = t.channel(size, "block")?;
    let sp = spec(t, Role::Block, size, 1, &none(), &ch.rx);
    let mut child = ChildProc::spawn(&sp, &[&ch.rx])?;
    drop(ch.rx.fd.take());
    let mut tx = t.open_tx(ch.tx.take(), size)?;
    child.expect("ready")?;
    child.go()?;
    std::thread::sleep(wait);
    tx.send(Pool::new(size).get(0))?;
    let line = child.line()?;
    let ns: u64 = line
        .strip_prefix("cpu_ns ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected report from the child: {line:?}"))?;
    child.finish()?;
    drop((tx, ch));
    Ok(Duration::from_nanos(ns))
}

/// The round trip of one cache line between two threads, median of five runs of 100 000 (after one of
/// warm-up): how far apart the two CPUs the scheduler gave them are. On a virtual machine this tells runs
/// apart that the host placed differently (two hyperthreads of one core share their caches; two cores, or
/// two chips, pass each line through a slower path), which moves every cross-process figure. `None` if it
/// takes longer than two seconds (the two threads do not run at the same time: the machine is busy).
pub fn line_round_trip() -> Option<Duration> {
    use crossbeam_utils::CachePadded;
    const TRIPS: u64 = 100_000;
    const RUNS: u64 = 6;
    const GIVE_UP: u64 = u64::MAX;
    let line = CachePadded::new(AtomicU64::new(0));
    // Waits until the line holds `v`; false if the other side gave up.
    let wait_for = |v: u64| loop {
        match line.load(Ordering::Acquire) {
            x if x == v => return true,
            GIVE_UP => return false,
            _ => std::hint::spin_loop(),
        }
    };
    let limit = Instant::now() + Duration::from_secs(2);
    let mut runs = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..RUNS * TRIPS {
                if !wait_for(2 * i + 1) {
                    return;
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        });
        for run in 0..RUNS {
            let start = Instant::now();
            for i in run * TRIPS..(run + 1) * TRIPS {
                // Here the helper has stored 2i and waits: giving up now cannot race with a store of its own.
                if i % 1024 == 0 && Instant::now() > limit {
                    line.store(GIVE_UP, Ordering::Release);
                    return;
                }
                line.store(2 * i + 1, Ordering::Release);
                wait_for(2 * i + 2);
            }
            if run > 0 {
                runs.push(start.elapsed().as_secs_f64() / TRIPS as f64);
            }
        }
    });
    (runs.len() as u64 == RUNS - 1).then(|| Duration::from_secs_f64(median(&runs)))
}

/// The `q`-quantile (0..=1) of `samples`, by sorting a copy: exact, not estimated.
pub fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    Some(v[i])
}

/// The median of a list of figures.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_size_and_differ() {
        for size in SIZES {
            let pool = Pool::new(size);
            assert_eq!(pool.get(0).len(), size);
            assert_ne!(pool.get(0), pool.get(1));
            assert!(pool.check(1, pool.get(1)).is_ok());
            assert!(pool.check(2, pool.get(1)).is_err());
        }
    }

    #[test]
    fn spec_round_trips() {
        let s = ChildSpec {
            transport: "pipe".into(),
            role: Role::Echo,
            size: 64,
            count: 9,
            tx: "5".into(),
            rx: "name-1".into(),
        };
        let d = ChildSpec::decode(&s.encode()).unwrap();
        assert_eq!((d.transport, d.role, d.size, d.count, d.tx, d.rx), (s.transport, s.role, 64, 9, s.tx, s.rx));
    }

    #[test]
    fn stream_frames_in_process() {
        // At 1000 B a batch (64 256 B) is not a multiple of the 64 KiB read, so frames straddle reads and the
        // reader has to keep the partial one.
        for kind in [StreamKind::Pipe, StreamKind::Socket] {
            for (size, count) in [(64, 200), (1000, 100)] {
                let t = Stream { kind, batched: true };
                let mut ch = t.channel(size, "unit").unwrap();
                let mut tx = t.open_tx(ch.tx.take(), size).unwrap();
                let mut rx = t.open_rx(ch.rx.take(), size).unwrap();
                let pool = Pool::new(size);
                produce(&mut tx, &pool, count, BATCH).unwrap();
                consume(&mut rx, &pool, count, BATCH).unwrap();
            }
        }
    }

    #[test]
    fn quantiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(quantile(&v, 0.5), Some(Duration::from_micros(51)));
        assert_eq!(quantile(&v, 0.99), Some(Duration::from_micros(99)));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
