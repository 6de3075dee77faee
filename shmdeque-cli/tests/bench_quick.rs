//! `shmdeque bench --quick --out DIR` runs end to end and writes well-formed outputs. No timing is asserted:
//! the figures depend on the machine; only their presence and shape are checked.

use std::process::{Command, Stdio};
use std::time::Duration;

use shmdeque_testkit::{Kid, Scratch};

#[test]
fn bench_quick_writes_table_csv_and_chart() {
    // Removed however the test ends.
    let dir = Scratch::new("bench-quick");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shmdeque"));
    cmd.args(["bench", "--quick", "--out"]).arg(dir.path()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Kid::start(cmd, "shmdeque bench --quick");
    let pid = child.pid;
    child.capture();
    // Watchdog: a hung benchmark fails the test instead of hanging it.
    let out = child.output(Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {}\n{stderr}", out.status);

    // The markdown table: a header and one row per transport and size, plus the contended rows.
    assert!(stdout.contains("| transport | size | msg/s | MB/s | vs pipe | RTT p50 | RTT p99 |"), "{stdout}");
    for label in ["pipe", "pipe x64", "unix socket", "unix socket x64", "shmdeque", "shmdeque in-place", "shmdeque x64"]
    {
        for size in ["8 B", "64 B", "1 KiB", "16 KiB", "64 KiB"] {
            assert!(stdout.contains(&format!("| {label} | {size} |")), "no row for {label} at {size}:\n{stdout}");
        }
    }
    assert!(stdout.contains("blocked"), "{stdout}");

    // The CSV: header, then rows with the same number of fields and numbers where numbers belong.
    let csv = std::fs::read_to_string(dir.file("bench.csv")).expect("bench.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("csv header").split(',').collect();
    assert_eq!(header[..6], ["section", "transport", "size_bytes", "messages", "runs", "msg_per_s"]);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 7 * 5 + 5, "{csv}");
    for row in &rows {
        let fields: Vec<&str> = row.splitn(header.len(), ',').collect();
        assert_eq!(fields.len(), header.len(), "{row}");
        for f in &fields[2..5] {
            f.parse::<u64>().unwrap_or_else(|_| panic!("not an integer in {row}"));
        }
        let rate: f64 = fields[5].parse().unwrap_or_else(|_| panic!("no rate in {row}"));
        assert!(rate > 0.0, "{row}");
    }

    // The chart: a complete SVG document naming every transport.
    let svg = std::fs::read_to_string(dir.file("throughput.svg")).expect("throughput.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "not an SVG document");
    assert!(svg.contains("shmdeque x64") && svg.contains("pipe"), "legend missing");
    assert!(dir.file("bench.md").is_file());

    // Nothing left behind in /dev/shm by this run.
    let prefix = format!("shmdeque-bench-{pid}-");
    let left: Vec<String> =
        shmdeque::list_segments().expect("list").into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "segments left behind: {left:?}");
}
