//! Both ends as an undo history shared between processes: edits are pushed at the back, undo pops from the
//! back (LIFO), and when the history is full the oldest edit is dropped from the front, atomically under the
//! deque's lock. A second process (a copy of this program) inspects the history in place without removing
//! anything.
//!
//! Run: `cargo run --release --example undo_stack`

use std::process::Command;

use shmdeque::{Builder, CreateMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, name] = args.as_slice()
        && role == "viewer"
    {
        let history = Builder::new(name).create_mode(CreateMode::Open).open::<String>()?;
        let guard = history.lock()?;
        let edits = guard.iter().collect::<Result<Vec<_>, _>>()?;
        println!("viewer sees {} edits, oldest first: {edits:?}", edits.len());
        return Ok(());
    }

    let name = format!("example-undo-{}", std::process::id());
    let history = Builder::new(&name).capacity(5).slot_size(64).create_mode(CreateMode::CreateExclusive).open()?;
    for word in ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"] {
        let edit = format!("insert {word:?}");
        let mut g = history.lock()?;
        if g.len() == history.capacity() {
            let dropped = g.try_pop_front()?;
            println!("history full, forgetting {dropped}");
        }
        g.try_push_back(edit)?;
    }
    for _ in 0..2 {
        println!("undo {}", history.pop_back()?);
    }
    let status = Command::new(std::env::current_exe()?).args(["viewer", &name]).status()?;
    assert!(status.success());
    shmdeque::remove(&name)?;
    Ok(())
}
