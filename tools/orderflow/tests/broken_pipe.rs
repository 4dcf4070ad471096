//! A reader that stops early (`orderflow topics list | head -1`) ends the
//! command quietly, as it ends any Unix tool, rather than with a panic.

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_reader_that_stops_early_ends_the_command_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(["topics", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orderflow starts");
    // Closed before the command prints its first line.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr reads");
    let status = child.wait().expect("orderflow ends");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(status.code(), Some(101), "{stderr}");
}
