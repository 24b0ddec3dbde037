//! Histories a correct store can produce are accepted.

mod common;

use common::{cas, op, read, verdict, write, write_unknown};
use hanode_linearize::{Input, Output};

/// An empty history is trivially linearizable.
#[test]
fn empty_history_is_accepted() {
    let report = verdict(&[]);
    assert!(report.ok, "{report}");
    assert_eq!(report.keys_checked, 0);
}

/// Non-overlapping operations in program order, each seeing the previous one's effect, are
/// accepted, starting from an absent key.
#[test]
fn sequential_history_is_accepted() {
    let history = [
        read(1, "k", None, 0, 10),
        write(1, "k", "1", 20, 30),
        read(2, "k", Some("1"), 40, 50),
        cas(2, "k", ("1", "2"), true, 60, 70),
        cas(3, "k", ("1", "3"), false, 80, 90),
        read(3, "k", Some("2"), 100, 110),
    ];
    let report = verdict(&history);
    assert!(report.ok, "{report}");
    assert_eq!(report.operations, 6);
    assert_eq!(report.keys_checked, 1);
}

/// Two overlapping writes may take effect in either order, so a later read may see either
/// value; both orders are accepted.
#[test]
fn overlapping_writes_may_be_read_in_either_order() {
    for winner in ["a", "b"] {
        let history = [
            write(1, "k", "a", 0, 100),
            write(2, "k", "b", 10, 90),
            read(3, "k", Some(winner), 110, 120),
            read(1, "k", Some(winner), 130, 140),
        ];
        let report = verdict(&history);
        assert!(report.ok, "reads seeing {winner:?}: {report}");
    }
}

/// Reads overlapping a write may see the old or the new value, even a read that started after
/// another read saw the new value, as long as the two reads overlap.
#[test]
fn reads_overlapping_a_write_may_see_old_or_new_value() {
    let history = [
        write(1, "k", "1", 0, 10),
        write(1, "k", "2", 20, 100),
        read(2, "k", Some("2"), 30, 40),
        // Overlaps the first read, so it may be ordered before it.
        read(3, "k", Some("1"), 35, 60),
        read(4, "k", Some("2"), 70, 80),
    ];
    let report = verdict(&history);
    assert!(report.ok, "{report}");
}

/// The input order of the history does not matter: the checker orders by time itself.
#[test]
fn history_order_does_not_matter() {
    let mut history = vec![
        write(1, "k", "1", 0, 10),
        read(2, "k", Some("1"), 20, 30),
        write(1, "k", "2", 40, 50),
        read(2, "k", Some("2"), 60, 70),
    ];
    history.reverse();
    let report = verdict(&history);
    assert!(report.ok, "{report}");
}

/// A write whose outcome is unknown may take effect long after the client gave up, so a read
/// that sees it much later is accepted.
#[test]
fn unknown_write_that_becomes_visible_later_is_accepted() {
    let history = [
        write(1, "k", "1", 0, 10),
        write_unknown(2, "k", "2", 20),
        read(3, "k", Some("1"), 1_000, 1_010),
        read(3, "k", Some("2"), 5_000, 5_010),
        read(4, "k", Some("2"), 6_000, 6_010),
    ];
    let report = verdict(&history);
    assert!(report.ok, "{report}");
}

/// A write whose outcome is unknown may never take effect, so reads that never see it are
/// accepted.
#[test]
fn unknown_write_that_never_becomes_visible_is_accepted() {
    let history = [
        write(1, "k", "1", 0, 10),
        write_unknown(2, "k", "2", 20),
        read(3, "k", Some("1"), 1_000, 1_010),
        read(4, "k", Some("1"), 5_000, 5_010),
    ];
    let report = verdict(&history);
    assert!(report.ok, "{report}");
}

/// A compare-and-swap with an unknown outcome may have applied, which explains a later read
/// of its new value.
#[test]
fn unknown_cas_that_applied_is_accepted() {
    let history = [
        write(1, "k", "1", 0, 10),
        op(
            2,
            "k",
            Input::Cas {
                from: "1".into(),
                to: "2".into(),
            },
            Output::Unknown,
            20,
            30,
        ),
        read(3, "k", Some("2"), 100, 110),
    ];
    let report = verdict(&history);
    assert!(report.ok, "{report}");
}

/// Failed operations never took effect and unanswered reads observed nothing, so neither
/// constrains the history, whatever values they mention.
#[test]
fn failed_operations_and_unanswered_reads_are_ignored() {
    let history = [
        write(1, "k", "1", 0, 10),
        op(2, "k", Input::Write("2".into()), Output::Failed, 20, 30),
        op(3, "k", Input::Read, Output::Unknown, 20, 30),
        op(3, "k", Input::Read, Output::Failed, 40, 50),
        read(4, "k", Some("1"), 100, 110),
    ];
    let report = verdict(&history);
    assert!(report.ok, "{report}");
    assert_eq!(report.operations, 5);
}

/// Operations whose intervals merely touch (one returns at the instant the other is called)
/// may be ordered either way: timestamps cannot tell which came first.
#[test]
fn touching_intervals_count_as_concurrent() {
    let history = [
        write(1, "k", "1", 0, 10),
        write(1, "k", "2", 10, 20),
        read(2, "k", Some("1"), 20, 30),
    ];
    let report = verdict(&history);
    assert!(report.ok, "{report}");
}
