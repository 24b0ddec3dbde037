//! Histories no linearizable store can produce are rejected, with an explanation.

mod common;

use common::{cas, op, read, verdict, write, write_unknown};
use hanode_linearize::{AnomalyKind, Input, Output};

/// A stale read (it starts after a write of "2" was acknowledged but returns the older "1")
/// is rejected, and the anomaly names the key, the read and the value it should have seen.
#[test]
fn stale_read_after_acknowledged_write_is_rejected() {
    let history = [
        write(1, "/registry/a", "1", 0, 10),
        write(1, "/registry/a", "2", 20, 30),
        read(3, "/registry/a", Some("1"), 40, 50),
    ];
    let report = verdict(&history);
    assert!(!report.ok);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    let anomaly = &report.anomalies[0];
    assert_eq!(anomaly.key, "/registry/a");
    assert_eq!(anomaly.kind, AnomalyKind::NotLinearizable);
    assert!(
        anomaly
            .description
            .contains("read by client 3 saw \"1\" at [40ns, 50ns]"),
        "{}",
        anomaly.description
    );
    assert!(
        anomaly.description.contains("could only hold \"2\""),
        "{}",
        anomaly.description
    );
    assert!(anomaly.operations.contains(&history[1]), "{report}");
    assert!(anomaly.operations.contains(&history[2]), "{report}");
}

/// A lost write (write "x" acknowledged, later non-overlapping reads never see it and see the
/// previous value instead) is rejected.
#[test]
fn lost_write_is_rejected() {
    let history = [
        write(1, "k", "1", 0, 10),
        read(2, "k", Some("1"), 20, 30),
        write(1, "k", "x", 40, 50),
        read(2, "k", Some("1"), 60, 70),
        read(3, "k", Some("1"), 80, 90),
    ];
    let report = verdict(&history);
    assert!(!report.ok);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert!(
        report.anomalies[0]
            .description
            .contains("read by client 2 saw \"1\" at [60ns, 70ns]"),
        "{report}"
    );
}

/// A compare-and-swap that reports success but whose effect a later read contradicts is
/// rejected.
#[test]
fn cas_reported_applied_but_contradicted_by_later_read_is_rejected() {
    let history = [
        write(1, "k", "1", 0, 10),
        cas(2, "k", ("1", "2"), true, 20, 30),
        read(3, "k", Some("1"), 40, 50),
    ];
    let report = verdict(&history);
    assert!(!report.ok, "{report}");
    assert_eq!(report.anomalies[0].kind, AnomalyKind::NotLinearizable);
}

/// A compare-and-swap that reports a failed compare while the key certainly held the
/// expected value is rejected.
#[test]
fn cas_reported_compare_failure_while_value_matched_is_rejected() {
    let history = [
        write(1, "k", "1", 0, 10),
        cas(2, "k", ("1", "2"), false, 20, 30),
    ];
    let report = verdict(&history);
    assert!(!report.ok, "{report}");
    assert!(
        report.anomalies[0]
            .description
            .contains("reported the compare failed"),
        "{report}"
    );
}

/// A compare-and-swap that reports success although the key held another value is rejected.
#[test]
fn cas_reported_applied_on_a_mismatched_value_is_rejected() {
    let history = [
        write(1, "k", "1", 0, 10),
        cas(2, "k", ("0", "2"), true, 20, 30),
    ];
    let report = verdict(&history);
    assert!(!report.ok, "{report}");
}

/// A read of a value nobody ever wrote is rejected, as is seeing a value on a key that was
/// never written.
#[test]
fn read_of_a_value_never_written_is_rejected() {
    let phantom = [write(1, "k", "1", 0, 10), read(2, "k", Some("7"), 20, 30)];
    assert!(!verdict(&phantom).ok);
    let from_nothing = [read(2, "k", Some("1"), 0, 10)];
    assert!(!verdict(&from_nothing).ok);
}

/// A read cannot see a value whose write was called only after the read returned.
#[test]
fn read_from_the_future_is_rejected() {
    let history = [read(1, "k", Some("1"), 0, 10), write(2, "k", "1", 20, 30)];
    assert!(!verdict(&history).ok);
}

/// A write with an unknown outcome takes effect at most once: after a read saw it overwrite
/// "1", a later read cannot see "1" again.
#[test]
fn unknown_write_cannot_be_undone() {
    let history = [
        write(1, "k", "1", 0, 10),
        write_unknown(2, "k", "2", 20),
        read(3, "k", Some("2"), 30, 40),
        read(3, "k", Some("1"), 50, 60),
    ];
    let report = verdict(&history);
    assert!(!report.ok, "{report}");
}

/// A failed write definitely did not take effect, so a read that sees its value is rejected.
#[test]
fn failed_write_that_becomes_visible_is_rejected() {
    let history = [
        write(1, "k", "1", 0, 10),
        op(2, "k", Input::Write("2".into()), Output::Failed, 20, 30),
        read(3, "k", Some("2"), 40, 50),
    ];
    let report = verdict(&history);
    assert!(!report.ok, "{report}");
}

/// Keys are independent registers: an anomaly on one key is reported for that key only, and
/// the other keys are checked and pass.
#[test]
fn anomaly_on_one_key_leaves_other_keys_clean() {
    let history = [
        write(1, "a", "1", 0, 10),
        write(2, "b", "1", 0, 10),
        write(3, "c", "1", 0, 10),
        write(1, "a", "2", 20, 30),
        write(2, "b", "2", 20, 30),
        read(1, "a", Some("2"), 40, 50),
        // Stale: only key "b" is broken.
        read(2, "b", Some("1"), 40, 50),
        read(3, "c", Some("1"), 40, 50),
    ];
    let report = verdict(&history);
    assert!(!report.ok);
    assert_eq!(report.keys_checked, 3);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert_eq!(report.anomalies[0].key, "b");
    assert!(
        report.anomalies[0]
            .operations
            .iter()
            .all(|op| op.key == "b"),
        "{report}"
    );
    assert!(report.undecided_keys.is_empty());
}

/// An output that does not fit its input, or a return before the call, is reported as a
/// malformed history rather than as a store bug, naming the operation.
#[test]
fn malformed_operations_are_reported_as_such() {
    let history = [
        op(1, "k", Input::Read, Output::Write, 0, 10),
        write(2, "k", "1", 30, 20),
        write(3, "other", "1", 0, 10),
    ];
    let report = verdict(&history);
    assert!(!report.ok);
    assert_eq!(report.anomalies.len(), 1, "{report}");
    let anomaly = &report.anomalies[0];
    assert_eq!(anomaly.kind, AnomalyKind::Malformed);
    assert_eq!(anomaly.key, "k");
    assert_eq!(anomaly.operations.len(), 2);
    assert!(
        anomaly.description.starts_with("2 malformed"),
        "{}",
        anomaly.description
    );
}
