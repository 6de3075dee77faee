//! Cross-process benchmarks: throughput by message size, ping-pong round trips, and the CPU of a blocked
//! consumer, for every built-in transport of `shmdeque_cli::bench` and for `ipmpsc` (a shared-memory ring with a
//! process-shared mutex and condition variable), which implements the same `Transport` trait here. With
//! `--features iceoryx2`, also for iceoryx2 publish-subscribe with a busy-polling subscriber (module `iox`).
//!
//! The other side of each run is this executable started again as a child (see `shmdeque_cli::bench`).
//! Throughput and round trips are timed with `iter_custom`: a sample of N iterations is N messages (or
//! N round trips) between two processes, the child's start-up excluded.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shmdeque_cli::bench::{self as harness, BUFFER_BYTES, Builtin, Channel, End, Receiver, SIZES, Sender, Transport};
use shmdeque_cli::with_builtin;

/// ipmpsc: one `SharedRingBuffer` of [`BUFFER_BYTES`] per direction, in a file in /dev/shm; messages are
/// sent as `serde_bytes` and received zero-copy.
struct Ipmpsc;

struct IpmpscTx(ipmpsc::Sender);
struct IpmpscRx(ipmpsc::Receiver);

impl Sender for IpmpscTx {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.send(&serde_bytes::Bytes::new(msg)).map_err(|e| format!("ipmpsc send: {e}"))
    }
}

impl Receiver for IpmpscRx {
    fn recv(&mut self, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
        let mut ctx = self.0.zero_copy_context();
        let msg: &[u8] = ctx.recv().map_err(|e| format!("ipmpsc recv: {e}"))?;
        check(msg)
    }
}

impl Transport for Ipmpsc {
    type Tx = IpmpscTx;
    type Rx = IpmpscRx;

    fn id(&self) -> &'static str {
        "ipmpsc"
    }

    fn label(&self) -> &'static str {
        "ipmpsc"
    }

    fn channel(&self, _size: usize, tag: &str) -> Result<Channel, String> {
        // A file in /dev/shm, so a segment name guards it: removed with the channel or by a watchdog.
        let name = harness::unique_name("ipmpsc", tag);
        let path = name.path().to_string_lossy().into_owned();
        ipmpsc::SharedRingBuffer::create(&path, BUFFER_BYTES as u32).map_err(|e| format!("ipmpsc create: {e}"))?;
        Ok(Channel {
            tx: End::named(&path),
            rx: End::named(&path),
            buffers: format!("ring {}", harness::bytes(BUFFER_BYTES)),
            segments: vec![name],
        })
    }

    fn open_tx(&self, end: End, _size: usize) -> Result<IpmpscTx, String> {
        let buf = ipmpsc::SharedRingBuffer::open(&end.token).map_err(|e| format!("ipmpsc open: {e}"))?;
        Ok(IpmpscTx(ipmpsc::Sender::new(buf)))
    }

    fn open_rx(&self, end: End, _size: usize) -> Result<IpmpscRx, String> {
        let buf = ipmpsc::SharedRingBuffer::open(&end.token).map_err(|e| format!("ipmpsc open: {e}"))?;
        Ok(IpmpscRx(ipmpsc::Receiver::new(buf)))
    }
}

/// iceoryx2 publish-subscribe: one service per direction, `[u8]` slices, the subscriber polling without pause.
#[cfg(feature = "iceoryx2")]
mod iox {
    use std::time::{Duration, Instant};

    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::port::update_connections::UpdateConnections;
    use iceoryx2::prelude::*;
    use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;
    use shmdeque_cli::bench::{Channel, End, Receiver, Sender, Transport, shm_geometry};
    use shmdeque_testkit::{Scratch, ShmPrefix};

    /// How long an end waits for the other to appear, and iceoryx2 for a service or connection being created
    /// (its default, 1 s, is short on a loaded 2-core machine).
    const PATIENCE: Duration = Duration::from_secs(30);

    /// Where the iceoryx2 files of this run go: its own root directory (node and service records) and its own
    /// prefix for the files in /dev/shm, both removed at the end and by the watchdog of a run that hangs; so
    /// nothing lands in /tmp/iceoryx2, and the run can neither meet nor leave services of anyone else.
    pub struct Place {
        root: Scratch,
        prefix: ShmPrefix,
    }

    impl Place {
        pub fn new() -> Place {
            Place { root: Scratch::new("iceoryx2"), prefix: ShmPrefix::unique("shmdeque-bench", "iox2") }
        }

        /// Files of this run's iceoryx2 in /dev/shm now.
        pub fn leftovers(&self) -> Vec<String> {
            self.prefix.files()
        }
    }

    /// The transport. Each direction is a publish-subscribe service of `[u8]` with one publisher and one
    /// subscriber, no history, a subscriber buffer of as many messages as the deque has slots (about
    /// `BUFFER_BYTES`), and no safe overflow: a publisher that finds the buffer full retries until there is
    /// room (`BackpressureStrategy::RetryUntilDelivered`), so no message is lost, as with the other transports.
    /// The publisher copies each message into a loaned sample; the subscriber polls `receive` in a loop with a
    /// spin hint and never sleeps (iceoryx2's lowest-latency setup; a sleeping subscriber would add its event
    /// service and a wake-up). Each end waits until the other exists and the subscriber has connected before
    /// it reports ready: iceoryx2 delivers a publisher's samples only to subscribers connected when it sends,
    /// and a subscriber that first looks after the publisher has sent its last sample and gone never sees them
    /// (the producer of a throughput run does exactly that). In a child the place is `None`: every end's token
    /// names it.
    pub struct Iceoryx2<'a>(pub Option<&'a Place>);

    type Svc = ipc::Service;
    /// A publish-subscribe service of byte slices, as a factory of ports.
    type Topic = PubSub<Svc, [u8], ()>;

    /// One end: the port, then the service and node it belongs to (dropped in that order).
    pub struct IoxTx {
        port: Publisher<Svc, [u8], ()>,
        _service: Topic,
        _node: Node<Svc>,
    }

    /// The receiving end, as [`IoxTx`].
    pub struct IoxRx {
        port: Subscriber<Svc, [u8], ()>,
        _service: Topic,
        _node: Node<Svc>,
    }

    impl Sender for IoxTx {
        fn send(&mut self, msg: &[u8]) -> Result<(), String> {
            let sample = self.port.loan_slice_uninit(msg.len()).map_err(|e| format!("iceoryx2 loan: {e:?}"))?;
            match sample.write_from_slice(msg).send() {
                Ok(1) => Ok(()),
                Ok(n) => Err(format!("iceoryx2 delivered a sample to {n} subscribers instead of 1")),
                Err(e) => Err(format!("iceoryx2 send: {e:?}")),
            }
        }
    }

    impl Receiver for IoxRx {
        fn recv(&mut self, mut check: impl FnMut(&[u8]) -> Result<(), String>) -> Result<(), String> {
            loop {
                match self.port.receive().map_err(|e| format!("iceoryx2 receive: {e:?}"))? {
                    Some(sample) => return check(sample.payload()),
                    None => std::hint::spin_loop(),
                }
            }
        }
    }

    /// The token of an end: `ROOT|PREFIX|SERVICE`.
    fn parse(token: &str) -> Result<(&str, &str, &str), String> {
        let mut it = token.splitn(3, '|');
        match (it.next(), it.next(), it.next()) {
            (Some(root), Some(prefix), Some(service)) => Ok((root, prefix, service)),
            _ => Err(format!("bad iceoryx2 token {token:?}")),
        }
    }

    /// The node and service behind a token, created by whichever side comes first, with the same settings on
    /// both sides (an open with other settings would fail).
    fn open(token: &str, size: usize) -> Result<(Node<Svc>, Topic), String> {
        let (root, prefix, service) = parse(token)?;
        let mut config = Config::default();
        config.global.prefix = FileName::new(prefix.as_bytes()).map_err(|e| format!("iceoryx2 prefix: {e:?}"))?;
        config.global.set_root_path(&Path::new(root.as_bytes()).map_err(|e| format!("iceoryx2 root: {e:?}"))?);
        config.global.creation_timeout = PATIENCE;
        let node = NodeBuilder::new()
            .config(&config)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Svc>()
            .map_err(|e| format!("iceoryx2 node: {e:?}"))?;
        let name = ServiceName::new(service).map_err(|e| format!("iceoryx2 service name: {e:?}"))?;
        let service = node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(buffer(size))
            .enable_safe_overflow(false)
            .open_or_create()
            .map_err(|e| format!("iceoryx2 service: {e:?}"))?;
        Ok((node, service))
    }

    /// Waits until `there` holds: the other end has appeared.
    fn await_peer(what: &str, there: impl Fn() -> bool) -> Result<(), String> {
        let until = Instant::now() + PATIENCE;
        while !there() {
            if Instant::now() > until {
                return Err(format!("no iceoryx2 {what} appeared within {} s", PATIENCE.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Messages the subscriber's buffer holds: as many as the deque has slots for this size.
    fn buffer(size: usize) -> usize {
        shm_geometry(size).0 as usize
    }

    impl Transport for Iceoryx2<'_> {
        type Tx = IoxTx;
        type Rx = IoxRx;

        fn id(&self) -> &'static str {
            "iceoryx2"
        }

        fn label(&self) -> &'static str {
            "iceoryx2"
        }

        fn channel(&self, size: usize, tag: &str) -> Result<Channel, String> {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let place = self.0.ok_or("no place for iceoryx2's files")?;
            let mut root = place.root.path().to_string_lossy().into_owned();
            root.push('/');
            let n = N.fetch_add(1, Ordering::Relaxed);
            let token = format!("{root}|{}|shmdeque-bench/{tag}/{n}", place.prefix.as_str());
            Ok(Channel {
                tx: End::named(&token),
                rx: End::named(&token),
                buffers: format!("subscriber buffer {} messages", buffer(size)),
                segments: vec![],
            })
        }

        fn open_tx(&self, end: End, size: usize) -> Result<IoxTx, String> {
            let (node, service) = open(&end.token, size)?;
            let port = service
                .publisher_builder()
                .initial_max_slice_len(size)
                .max_loaned_samples(1)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .map_err(|e| format!("iceoryx2 publisher: {e:?}"))?;
            await_peer("subscriber", || service.dynamic_config().number_of_subscribers() > 0)?;
            Ok(IoxTx { port, _service: service, _node: node })
        }

        fn open_rx(&self, end: End, size: usize) -> Result<IoxRx, String> {
            let (node, service) = open(&end.token, size)?;
            let port = service
                .subscriber_builder()
                .buffer_size(buffer(size))
                .create()
                .map_err(|e| format!("iceoryx2 subscriber: {e:?}"))?;
            await_peer("publisher", || service.dynamic_config().number_of_publishers() > 0)?;
            port.update_connections().map_err(|e| format!("iceoryx2 connecting to the publisher: {e:?}"))?;
            Ok(IoxRx { port, _service: service, _node: node })
        }
    }
}

/// Every transport of the comparison: the built-ins, ipmpsc, then iceoryx2 if built in (its files go to
/// `$place`). `$body` runs with `$t` bound to each.
macro_rules! for_each_transport {
    ($place:expr, |$t:ident| $body:expr) => {{
        for b in Builtin::ALL {
            with_builtin!(b, |$t| $body);
        }
        let $t = Ipmpsc;
        $body;
        #[cfg(feature = "iceoryx2")]
        {
            let $t = iox::Iceoryx2(Some($place));
            $body;
        }
    }};
}

fn throughput_of<T: Transport>(c: &mut Criterion, t: &T, size: usize) {
    let mut g = c.benchmark_group(format!("throughput/{}", harness::bytes(size).replace(' ', "")));
    g.throughput(Throughput::Elements(1)).sample_size(10).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function(BenchmarkId::from_parameter(t.label()), |b| {
        b.iter_custom(|iters| harness::throughput(t, size, iters).map(|(d, _)| d).unwrap_or_else(|e| fail(&e)))
    });
    g.finish();
}

fn round_trip_of<T: Transport>(c: &mut Criterion, t: &T) {
    if t.batch() != 1 {
        return;
    }
    let mut g = c.benchmark_group("round_trip/64B");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    g.bench_function(BenchmarkId::from_parameter(t.label()), |b| {
        b.iter_custom(|iters| {
            let samples = harness::round_trips(t, 64, 1000, iters).unwrap_or_else(|e| fail(&e));
            samples.iter().sum()
        })
    });
    g.finish();
}

/// Percentiles that criterion's mean does not show: 20 000 round trips after as many of warm-up.
fn percentiles_of<T: Transport>(t: &T, out: &mut Vec<String>) {
    if t.batch() != 1 {
        return;
    }
    let s = harness::round_trips(t, 64, 20_000, 20_000).unwrap_or_else(|e| fail(&e));
    let q = |p| harness::quantile(&s, p).unwrap_or_default().as_secs_f64() * 1e6;
    out.push(format!("| {} | {:.2} µs | {:.2} µs | {:.2} µs |", t.label(), q(0.5), q(0.99), q(0.999)));
}

fn blocked_of<T: Transport>(t: &T, out: &mut Vec<String>) {
    if t.batch() != 1 || t.id().ends_with("inplace") {
        return;
    }
    let wait = Duration::from_secs(2);
    let cpu = harness::blocked_cpu(t, wait).unwrap_or_else(|e| fail(&e));
    out.push(format!("| {} | {:.3} ms | {:.4} % |", t.label(), cpu.as_secs_f64() * 1e3, cpu.as_secs_f64() / 0.02));
}

/// Ends the run: kills the children and removes every segment and file of this process first, since `exit`
/// runs no destructors.
fn fail(e: &str) -> ! {
    eprintln!("error: {e}");
    shmdeque_testkit::clean_up_all();
    std::process::exit(1)
}

fn main() {
    let spec = harness::child_spec();
    if let Some(spec) = &spec
        && spec.transport == Ipmpsc.id()
    {
        harness::serve_child(&Ipmpsc, spec);
    }
    #[cfg(feature = "iceoryx2")]
    if let Some(spec) = &spec
        && spec.transport == iox::Iceoryx2(None).id()
    {
        harness::serve_child(&iox::Iceoryx2(None), spec);
    }
    harness::maybe_serve_builtin();

    #[cfg(feature = "iceoryx2")]
    let place = iox::Place::new();
    #[cfg(feature = "iceoryx2")]
    let place = &place;
    #[cfg(not(feature = "iceoryx2"))]
    let place = &();

    let mut c = Criterion::default().configure_from_args();
    for size in SIZES {
        for_each_transport!(place, |t| throughput_of(&mut c, &t, size));
    }
    for_each_transport!(place, |t| round_trip_of(&mut c, &t));
    c.final_summary();

    // Only when measuring (not under `cargo test --benches`, which passes no --bench flag).
    if std::env::args().any(|a| a == "--bench") {
        let mut rtt = vec!["| transport | p50 | p99 | p99.9 |".to_owned(), "|---|---:|---:|---:|".to_owned()];
        for_each_transport!(place, |t| percentiles_of(&t, &mut rtt));
        println!("\nPing-pong round trip of a 64-byte message:\n{}", rtt.join("\n"));
        let mut cpu = vec!["| transport | CPU | share |".to_owned(), "|---|---:|---:|".to_owned()];
        for_each_transport!(place, |t| blocked_of(&t, &mut cpu));
        println!("\nCPU of a consumer blocked on an empty channel for 2 s:\n{}", cpu.join("\n"));
    }

    // iceoryx2 removes a service's files with its last port, service and node, but keeps its global management
    // segment (`…_node.<version>.global_mgmt`) in /dev/shm for good, by design. Dropping the place removes it.
    #[cfg(feature = "iceoryx2")]
    {
        let left = place.leftovers();
        let unexpected: Vec<&String> = left.iter().filter(|f| !f.ends_with(".global_mgmt")).collect();
        if !unexpected.is_empty() {
            eprintln!("iceoryx2 left {} file(s) in /dev/shm (removed now): {unexpected:?}", unexpected.len());
        }
    }
    let _ = place;
}
