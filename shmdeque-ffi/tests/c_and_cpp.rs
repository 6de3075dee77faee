//! C and C++ programs built with the system `cc` and `c++` against the library this build made, run as real
//! processes: the C API's own test program (linked statically and dynamically), the C++ wrapper's, and the
//! examples talking to the Rust tools — the Rust `producer` feeding the C++ consumer, C producers feeding the
//! Rust `consumer --verify`. Everything once plainly and once under AddressSanitizer and UBSan.
//!
//! The tools come from the same build (`shmdeque_testkit::tool`): run from the workspace root, as
//! `cargo test --release` does. Every segment name is unique and removed, every process has a time limit,
//! and a watchdog ends the test if anything hangs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use shmdeque_testkit::{Kid, Name, Scratch, Watchdog, tool};

/// How long one compiler run or program may take before the test fails.
const LIMIT: Duration = Duration::from_secs(120);
/// Messages per producer in the interoperability runs.
const COUNT: u64 = 20_000;
/// What a program linked against the static library needs besides it (`rustc --print native-static-libs`).
const NATIVE_LIBS: [&str; 6] = ["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s"];
const SANITIZE: [&str; 4] =
    ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// The directory holding `libshmdeque_ffi.a` and `.so` of this build: the test executable's own (`deps`, where
/// cargo puts the library's artifacts when it builds them for tests), else its parent (`cargo build`).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory").to_path_buf();
    let profile = deps.parent().map(Path::to_path_buf).unwrap_or_else(|| deps.clone());
    [deps, profile]
        .into_iter()
        .find(|d| d.join("libshmdeque_ffi.a").exists() && d.join("libshmdeque_ffi.so").exists())
        .expect("libshmdeque_ffi.a and .so are not built next to the test; run `cargo test --release` from the root")
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Static,
    Shared,
}

/// A compiler and its flags for one variant (plain, or with the sanitizers).
struct Toolchain {
    sanitize: bool,
    dir: Scratch,
}

impl Toolchain {
    fn new(what: &str, sanitize: bool) -> Toolchain {
        Toolchain { sanitize, dir: Scratch::new(what) }
    }

    /// Compiles and links `sources` (C or C++, by extension of the first) into a program called `out`.
    fn build(&self, sources: &[&str], out: &str, link: Link) -> PathBuf {
        let cxx = sources[0].ends_with(".cpp");
        let exe = self.dir.file(out);
        let include = repo().join("shmdeque-ffi/include");
        let lib = lib_dir();
        let mut cmd = Command::new(if cxx { "c++" } else { "cc" });
        cmd.args(if cxx { ["-std=c++17"] } else { ["-std=c11"] });
        cmd.args(["-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", "-I"]).arg(&include);
        if self.sanitize {
            cmd.args(SANITIZE);
        }
        cmd.args(sources.iter().map(|s| repo().join(s)));
        match link {
            Link::Static => cmd.arg(lib.join("libshmdeque_ffi.a")),
            Link::Shared => cmd.arg("-L").arg(&lib).arg("-lshmdeque_ffi").arg(format!("-Wl,-rpath,{}", lib.display())),
        };
        cmd.args(NATIVE_LIBS).arg("-o").arg(&exe);
        let out = run(cmd, &format!("compiling {out}"));
        assert!(out.status.success(), "compiling {out:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        exe
    }

    /// A command for `program`, with the sanitizers set to stop at the first report.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // cargo points LD_LIBRARY_PATH at target/PROFILE too, whose libshmdeque_ffi.so may be from an older
        // `cargo build`: it would win over the rpath to this build's.
        cmd.env_remove("LD_LIBRARY_PATH");
        if self.sanitize {
            cmd.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86");
            cmd.env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=87");
        }
        cmd
    }
}

/// Runs `cmd` to the end (at most [`LIMIT`]), capturing its output.
fn run(cmd: Command, label: &str) -> Output {
    let mut kid = start(cmd, label);
    kid.output(LIMIT)
}

fn start(mut cmd: Command, label: &str) -> Kid {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut kid = Kid::start(cmd, label);
    kid.capture();
    kid
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that a program exited 0, showing what it printed otherwise.
fn succeeded(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} ended with {}:\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Whether the compiler can build and run a program with the sanitizers (their runtimes installed).
fn sanitizers_available() -> bool {
    let t = Toolchain::new("ffi-probe", true);
    let src = t.dir.file("probe.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").expect("write the probe");
    let exe = t.dir.file("probe");
    let mut cc = Command::new("cc");
    cc.args(SANITIZE).arg(&src).arg("-o").arg(&exe);
    run(cc, "probing the sanitizers").status.success() && run(t.command(&exe), "the probe").status.success()
}

// ---------------------------------------------------------------------------------------------------------
// The scenarios, each for one toolchain

fn c_api(t: &Toolchain) {
    for link in [Link::Static, Link::Shared] {
        let exe = t.build(&["shmdeque-ffi/tests/c/api_test.c"], "api_test", link);
        let name = Name::new("ffi-c-api");
        let mut cmd = t.command(&exe);
        cmd.arg(name.as_str());
        let out = succeeded(&run(cmd, "api_test"), "the C API test");
        assert!(out.contains("checks passed"), "{out}");
        assert!(!name.exists(), "the C test removes its deque");
    }
}

fn cpp_wrapper(t: &Toolchain) {
    let exe = t.build(&["shmdeque-ffi/tests/cpp/wrapper_test.cpp"], "wrapper_test", Link::Static);
    let name = Name::new("ffi-cpp");
    let mut cmd = t.command(&exe);
    cmd.arg(name.as_str());
    let out = succeeded(&run(cmd, "wrapper_test"), "the C++ wrapper test");
    assert!(out.contains("checks passed"), "{out}");
}

/// The Rust `producer` → the C++ consumer, which checks every message and the count.
fn rust_to_cpp(t: &Toolchain) {
    let consumer = t.build(&["examples/cpp/consumer.cpp"], "consumer", Link::Static);
    for size in [37, 1000] {
        let name = Name::new("ffi-rust-to-cpp");
        let mut c = t.command(&consumer);
        c.arg(name.as_str()).args(["--expect", &COUNT.to_string(), "--wait", "60", "--timeout", "60"]);
        let mut c = start(c, "C++ consumer");
        let mut p = Command::new(tool("producer"));
        p.args(["--name", name.as_str(), "--count", &COUNT.to_string(), "--size", &size.to_string()]);
        p.args(["--timeout", "60"]);
        let mut p = start(p, "Rust producer");
        // The consumer first: one that fails early leaves the producer blocked on a full deque.
        let out = succeeded(&c.output(LIMIT), "the C++ consumer");
        assert_eq!(out.trim(), format!("consumer: {COUNT} messages verified"));
        succeeded(&p.output(LIMIT), "the Rust producer");
    }
}

/// Two C producers → the Rust `consumer --verify --consecutive`. The test holds a producer registration of
/// its own meanwhile, so that the deque is closed only when it leaves: the C producers' leaving must not
/// close it while another producer lives.
fn c_to_rust(t: &Toolchain) {
    let producer = t.build(&["examples/c/producer.c"], "producer", Link::Static);
    let name = Name::new("ffi-c-to-rust");
    let q = shmdeque::Builder::new(name.as_str()).capacity(256).slot_size(1024).open_raw().expect("create");
    let me = q.register_producer().expect("register");
    let mut consumer = Command::new(tool("consumer"));
    consumer.args(["--name", name.as_str(), "--verify", "--consecutive", "--timeout", "60"]);
    let mut consumer = start(consumer, "Rust consumer");
    let producers: Vec<Kid> = [(1, 37), (2, 1000)]
        .into_iter()
        .map(|(id, size)| {
            let mut cmd = t.command(&producer);
            cmd.arg(name.as_str()).args([COUNT.to_string(), size.to_string(), id.to_string()]);
            start(cmd, "C producer")
        })
        .collect();
    for mut p in producers {
        // A consumer that rejects a message ends early and leaves the producers blocked: report it then.
        while p.try_status().is_none() {
            if consumer.try_status().is_some() {
                let out = consumer.output(LIMIT);
                panic!("the Rust consumer ended early with {}: {}", out.status, text(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = p.output(LIMIT);
        succeeded(&out, "a C producer");
        assert!(!text(&out.stderr).contains("closed the deque"), "a C producer closed the deque early");
    }
    assert!(!q.is_closed());
    assert!(me.leave(true).expect("leave"), "the test's registration was the last");
    drop(q);
    let out = succeeded(&consumer.output(LIMIT), "the Rust consumer");
    assert_eq!(out.lines().count() as u64, 2 * COUNT);
}

/// The C producer's messages are byte for byte those of `shmdeque_synth::make`, filler included (a
/// checksum over different filler would still verify).
fn c_messages_are_the_rust_ones(t: &Toolchain) {
    let producer = t.build(&["examples/c/producer.c"], "producer", Link::Static);
    let name = Name::new("ffi-bytes");
    for (id, size) in [(0u32, 32usize), (7, 33), (u32::MAX, 300)] {
        let mut cmd = t.command(&producer);
        cmd.arg(name.as_str()).args(["200".to_owned(), size.to_string(), id.to_string()]);
        succeeded(&run(cmd, "C producer"), "the C producer");
        let q = shmdeque::Builder::new(name.as_str()).create_mode(shmdeque::CreateMode::Open).open_raw().expect("open");
        for seq in 0..200 {
            assert_eq!(
                q.try_pop_front().expect("pop"),
                shmdeque_synth::make(id, seq, size),
                "message {seq} of {size} B"
            );
        }
        assert!(q.try_pop_front().unwrap_err().is_closed());
    }
}

/// The C++ consumer rejects a message whose checksum is wrong (the checks above could not fail otherwise).
fn cpp_rejects_a_bad_message(t: &Toolchain) {
    let consumer = t.build(&["examples/cpp/consumer.cpp"], "consumer", Link::Static);
    let name = Name::new("ffi-bad");
    let q = shmdeque::Builder::new(name.as_str()).capacity(8).slot_size(128).open_raw().expect("create");
    q.push_back(&shmdeque_synth::make(5, 0, 64)).expect("push");
    let mut bad = shmdeque_synth::make(5, 1, 64);
    bad[40] ^= 1;
    q.push_back(&bad).expect("push");
    q.close().expect("close");
    let mut cmd = t.command(&consumer);
    cmd.arg(name.as_str());
    let out = run(cmd, "C++ consumer");
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("message #1 is bad: checksum mismatch"), "{}", text(&out.stderr));
}

/// The benchmark of the README's "From C and C++" builds and runs (briefly: the figures come from long runs).
fn bench_program(t: &Toolchain) {
    let exe = t.build(&["shmdeque-ffi/bench/push_pop.c"], "push_pop", Link::Static);
    for mode in ["copy", "inplace"] {
        let mut cmd = t.command(&exe);
        cmd.args(["10000", mode]);
        let out = succeeded(&run(cmd, "push_pop"), "the C benchmark");
        assert!(out.starts_with(&format!("c {mode}: 10000 iterations, ")), "{out}");
    }
}

fn all(t: &Toolchain) {
    c_api(t);
    cpp_wrapper(t);
    rust_to_cpp(t);
    c_to_rust(t);
    c_messages_are_the_rust_ones(t);
    cpp_rejects_a_bad_message(t);
    bench_program(t);
}

#[test]
fn c_and_cpp_programs() {
    let _w = Watchdog::new("c_and_cpp_programs", 10 * LIMIT);
    all(&Toolchain::new("ffi-plain", false));
}

#[test]
fn c_and_cpp_programs_under_sanitizers() {
    let _w = Watchdog::new("c_and_cpp_programs_under_sanitizers", 10 * LIMIT);
    if !sanitizers_available() {
        eprintln!(
            "NOTE: this compiler cannot build and run programs with -fsanitize=address,undefined (on Debian the \
             runtimes come with gcc as libasan8 and libubsan1); the sanitized run is skipped"
        );
        return;
    }
    all(&Toolchain::new("ffi-sanitized", true));
}
