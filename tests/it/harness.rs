//! The harness stops what it starts: the servers of a test bed are gone once
//! the test that started them ends, also when it panics.

use crate::common;

use common::{alive, Bed, KillOnDrop, PebbleOptions};

/// Starts a bed (and a child process), records their pids and panics; the
/// unwinding drops everything. Returns the pids.
fn panic_with_servers_running() -> Option<Vec<u32>> {
    if !(common::have("pebble") && common::have("pebble-challtestsrv") && common::have("nginx")) {
        return None;
    }
    let mut pids = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let bed = Bed::start(PebbleOptions::default()).expect("bed");
        let child = KillOnDrop(
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("spawn sleep"),
        );
        pids.extend(bed.nginx.pids());
        pids.extend(bed.pebble.pids());
        pids.push(child.id());
        panic!("deliberate panic with the servers running (harness test)");
    }));
    assert!(r.is_err());
    Some(pids)
}

#[test]
fn servers_stop_when_a_test_panics() {
    let Some(pids) = panic_with_servers_running() else {
        return;
    };
    // nginx master + at least one worker, Pebble, pebble-challtestsrv, sleep.
    assert!(pids.len() >= 5, "{pids:?}");
    // The handles stop and reap their processes while the panic unwinds;
    // nginx's master waits for its workers before it exits.
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running after the test: {left:?}");
}
