//! The testkit's own promises: names, scratch directories and children clean up when dropped, and a watchdog
//! that fires cleans up after everything still registered before it ends the process.

use std::process::Command;
use std::time::Duration;

use shmdeque_testkit::{Kid, Name, ROLE, Scratch, Watchdog, child_init, wait_until};

const ENTRY: &str = "kit_child";
const INFO: &str = "SHMDEQUE_KIT_INFO";
const LIMIT: Duration = Duration::from_secs(60);

/// Whether process `pid` is gone (or a zombie nobody reaped yet: dead all the same).
fn dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

/// The child side. Does nothing in a normal test run.
#[test]
fn kit_child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    child_init();
    match role.as_str() {
        // Makes a segment, a scratch directory and a child, reports them, then hangs under a short watchdog.
        "hang" => {
            let name = Name::new("hang");
            let q = shmdeque::Builder::new(&*name).capacity(4).slot_size(64).open_raw().expect("create");
            let scratch = Scratch::new("hang");
            std::fs::write(scratch.file("kept"), b"x").expect("write a file");
            let mut sleep = Command::new("sleep");
            sleep.arg("600");
            let sleeper = Kid::start(sleep, "sleep");
            let info = format!("{}\n{}\n{}\n", &*name, scratch.path().display(), sleeper.pid);
            std::fs::write(std::env::var(INFO).expect("info file"), info).expect("report");
            let _dog = Watchdog::new("the hang role", Duration::from_millis(200));
            std::thread::sleep(LIMIT);
            drop((q, sleeper, scratch, name));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn a_firing_watchdog_kills_every_child_and_removes_every_segment_and_scratch_directory() {
    let dir = Scratch::new("kit");
    let info = dir.file("info");
    let mut kid = Kid::spawn(ENTRY, "hang", &[(INFO, info.display().to_string())]);
    let status = kid.wait(LIMIT);
    assert_eq!(status.code(), Some(101), "the watchdog fails the process as a failed test does");
    let text = std::fs::read_to_string(&info).expect("the child reported what it made");
    let [name, scratch, pid] = text.lines().collect::<Vec<_>>()[..] else { panic!("report: {text:?}") };
    let _guard = Name::from_existing(name.to_owned());
    assert!(!shmdeque_testkit::segment_path(name).exists(), "segment {name} left behind");
    assert!(!std::path::Path::new(scratch).exists(), "scratch directory {scratch} left behind");
    let pid: u32 = pid.parse().expect("pid");
    wait_until("the grandchild is killed", LIMIT, || dead(pid));
}

#[test]
fn names_scratch_directories_and_children_clean_up_when_dropped() {
    let name = Name::new("drop");
    drop(shmdeque::Builder::new(&*name).capacity(4).slot_size(64).open_raw().expect("create"));
    let path = name.path();
    assert!(path.exists());
    drop(name);
    assert!(!path.exists(), "a dropped name removes its segment");

    let scratch = Scratch::new("drop");
    std::fs::write(scratch.file("f"), b"x").unwrap();
    let dir = scratch.path().to_owned();
    drop(scratch);
    assert!(!dir.exists(), "a dropped scratch directory is removed with its contents");

    let mut sleep = Command::new("sleep");
    sleep.arg("600");
    let kid = Kid::start(sleep, "sleep");
    let pid = kid.pid;
    drop(kid);
    assert!(std::fs::metadata(format!("/proc/{pid}")).is_err(), "a dropped child is killed and reaped");
}
