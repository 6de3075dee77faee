//! Real `redis-server` processes for the tests of the Redis backend: each on a free loopback port, with its
//! own scratch directory, killed when dropped (and when the test process dies: the server gets
//! `PR_SET_PDEATHSIG`), so no test leaves a server running. No mock: the Debian package `redis-server`
//! (7.x), which `.ci/run` installs when it is missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Kid, Scratch};

/// How long a server may take to answer its first PING.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Whether `program` (`redis-server`, `redis-cli`, `redis-benchmark`) can be started.
pub fn have(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A loopback port that nothing listens on now (and, with `bus`, whose Cluster bus port, +10000, is free
/// too).
pub fn free_port(bus: bool) -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = l.local_addr().expect("local address").port();
        drop(l);
        if !bus || (port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()) {
            return port;
        }
    }
    panic!("no free loopback port pair found");
}

/// Sends one inline command and returns the first reply line (`+PONG`, `-LOADING …`), or `None` if the
/// server cannot be reached.
fn inline(port: u16, command: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_owned())
}

/// A `redis-server` started by a test. Dropping it kills the server.
#[derive(Debug)]
pub struct RedisServer {
    kid: Option<Kid>,
    /// The loopback port it listens on.
    pub port: u16,
    dir: Scratch,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start(test: &str) -> RedisServer {
        RedisServer::start_with(test, &[])
    }

    /// Starts a server with extra arguments (`--appendonly yes`, `--cluster-enabled yes`, …).
    ///
    /// # Panics
    /// If no server answers within 20 s.
    pub fn start_with(test: &str, extra: &[&str]) -> RedisServer {
        let bus = extra.contains(&"--cluster-enabled");
        let mut server = RedisServer {
            kid: None,
            port: free_port(bus),
            dir: Scratch::new(&format!("redis-{test}")),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--logfile", "server.log"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2), which is
        // async-signal-safe; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut kid = Kid::start(cmd, &format!("redis-server :{}", self.port));
        let started = Instant::now();
        loop {
            match inline(self.port, "PING") {
                Some(r) if r == "+PONG" => break,
                _ => {}
            }
            if let Some(status) = kid.try_status() {
                panic!("redis-server on port {} exited with {status}; log:\n{}", self.port, self.log());
            }
            assert!(started.elapsed() < START_LIMIT, "redis-server on port {} did not answer PING", self.port);
            thread::sleep(Duration::from_millis(5));
        }
        self.kid = Some(kid);
    }

    /// `redis://127.0.0.1:PORT/0`, plus `query` (without `?`) if not empty.
    pub fn url(&self, query: &str) -> String {
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("redis://127.0.0.1:{}/0{q}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's directory (its append-only file, its log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli")
    }

    /// As [`cli`](Self::cli), returning standard output as text after checking that it succeeded.
    pub fn cli_text(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// SIGKILLs the server, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut kid) = self.kid.take() {
            kid.kill();
        }
    }

    /// Stops the server the clean way (SIGTERM, as `SHUTDOWN` or a service manager would): it writes and
    /// syncs its append-only file before it exits.
    pub fn shut_down(&mut self) {
        if let Some(mut kid) = self.kid.take() {
            kid.send_signal(libc::SIGTERM);
            let status = kid.wait(START_LIMIT);
            assert!(
                status.success(),
                "redis-server on port {} shut down with {status}; log:\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// Starts the server again on the same port and directory (SIGKILLing it first unless
    /// [`kill`](Self::kill) or [`shut_down`](Self::shut_down) stopped it), and waits until it answers PING (which it does only once it has loaded its append-only file).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        // PING answers during loading in some versions; wait until a data command stops saying LOADING.
        let started = Instant::now();
        while inline(self.port, "DBSIZE").is_none_or(|r| r.starts_with("-LOADING")) {
            assert!(started.elapsed() < START_LIMIT, "redis-server on port {} stayed loading", self.port);
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A Redis Cluster of `n` primaries without replicas, started by a test (`redis-server --cluster-enabled
/// yes` × n, then `redis-cli --cluster create`). Dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes and joins them into one cluster, then waits until it reports `cluster_state:ok` on
    /// every node.
    ///
    /// # Panics
    /// If the cluster does not form within 60 s.
    pub fn start(test: &str, n: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..n)
            .map(|i| {
                RedisServer::start_with(
                    &format!("{test}-{i}"),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
            })
            .collect();
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(nodes.iter().map(|s| format!("127.0.0.1:{}", s.port)));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let out = Command::new("redis-cli").args(&args).stdin(Stdio::null()).output().expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let started = Instant::now();
        for node in &nodes {
            while !node.cli_text(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(started.elapsed() < Duration::from_secs(60), "the cluster did not reach state ok");
                thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`, plus `query` if not empty.
    pub fn url(&self, query: &str) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("redis+cluster://{}{q}", hosts.join(","))
    }
}
