//! Linearizability checking for hanode's key-value API, in the style of Jepsen's Knossos and
//! porcupine.
//!
//! Owns three things:
//! - the vocabulary of a history ([`Input`], [`Output`], [`Operation`]): what a client asked for
//!   one key, what it observed, and the real-time interval in which it happened;
//! - a thread-safe [`Recorder`] that test clients use to log invocations and completions;
//! - [`check`], which decides whether a history is linearizable with respect to a per-key
//!   register supporting read, write and compare-and-swap, and explains the first operation
//!   that could not be linearized.
//!
//! It does not run workloads, inject faults or talk to a store: it is pure computation, with no
//! I/O, no async runtime and no network. Test harnesses drive hanode, record what they saw, and
//! hand the history here.
//!
//! Keys are independent registers, so the history is split per key (linearizability is
//! compositional) and each key is searched on its own; every key starts absent. The search is
//! Wing & Gong's with Lowe's just-in-time linearization and a memo of visited configurations
//! (as in porcupine), backed by a level-by-level search for histories with many unknown
//! outcomes; both stop at a [`CheckBudget`] and report the key undecided rather than hang.
//! Histories whose writes use unique values are the cheapest to check.

mod check;
mod history;
mod recorder;
mod search;

pub use check::{Anomaly, AnomalyKind, CheckBudget, Report, check};
pub use history::{Input, Operation, Output};
pub use recorder::{OpId, RecordError, Recorder};
