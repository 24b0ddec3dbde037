//! The vocabulary of a history: what a client asked of one key, what it observed, and when.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a client asked the store to do to one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Input {
    /// Read the key's current value.
    Read,
    /// Set the key to this value, whatever it held before.
    Write(String),
    /// Set the key to `to` only if it currently holds `from`.
    Cas {
        /// The value the key must hold for the swap to apply.
        from: String,
        /// The value the key holds after the swap applied.
        to: String,
    },
}

/// What the client learned about the outcome of its [`Input`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Output {
    /// The value a [`Input::Read`] saw; `None` means the key was absent.
    Read(Option<String>),
    /// A [`Input::Write`] was acknowledged.
    Write,
    /// A [`Input::Cas`] answered: `true` means the swap applied, `false` means the comparison
    /// failed and the key was definitely not changed.
    Cas(bool),
    /// The outcome is indeterminate (a timeout, a lost connection): the operation may have
    /// taken effect at any moment after it was called, possibly after the client gave up, or
    /// never.
    Unknown,
    /// The operation definitely did not take effect (it was rejected before it could apply).
    Failed,
}

/// One client operation on one key, with the real-time interval in which it was pending.
///
/// Times are nanoseconds on one clock shared by every client of the history. For operations
/// whose output is [`Output::Unknown`] or [`Output::Failed`], `return_ns` is informative only:
/// the checker treats an unknown outcome as returning at +infinity and drops failed ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// The client (a logical process: one operation pending at a time) that issued it.
    pub client: u64,
    /// The key it addressed.
    pub key: String,
    /// What was asked.
    pub input: Input,
    /// What was observed.
    pub output: Output,
    /// When the client invoked it (before the request could reach the store).
    pub call_ns: u64,
    /// When the client received the answer (after the store could have applied it).
    pub return_ns: u64,
}

impl Operation {
    /// Why this operation cannot be part of a meaningful history, if it cannot: an output of
    /// the wrong kind for its input, or a definite answer received before the call was made.
    pub(crate) fn malformation(&self) -> Option<String> {
        let definite = match (&self.input, &self.output) {
            (_, Output::Unknown | Output::Failed) => false,
            (Input::Read, Output::Read(_))
            | (Input::Write(_), Output::Write)
            | (Input::Cas { .. }, Output::Cas(_)) => true,
            (input, output) => {
                return Some(format!("input {input:?} cannot produce output {output:?}"));
            }
        };
        if definite && self.return_ns < self.call_ns {
            return Some(format!(
                "it returned at {}ns, before it was called at {}ns",
                self.return_ns, self.call_ns
            ));
        }
        None
    }
}

/// A one-line human description, e.g. `read by client 3 saw "1" at [120ns, 180ns]`.
impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client = self.client;
        match (&self.input, &self.output) {
            (Input::Read, Output::Read(Some(value))) => {
                write!(f, "read by client {client} saw {value:?}")?;
            }
            (Input::Read, Output::Read(None)) => {
                write!(f, "read by client {client} saw the key absent")?;
            }
            (Input::Read, outcome) => write!(f, "read by client {client} ({})", word(outcome))?,
            (Input::Write(value), outcome) => {
                write!(
                    f,
                    "write of {value:?} by client {client} ({})",
                    word(outcome)
                )?;
            }
            (Input::Cas { from, to }, outcome) => {
                write!(
                    f,
                    "cas {from:?} -> {to:?} by client {client} ({})",
                    word(outcome)
                )?;
            }
        }
        match self.output {
            Output::Unknown | Output::Failed => write!(f, " called at {}ns", self.call_ns),
            _ => write!(f, " at [{}ns, {}ns]", self.call_ns, self.return_ns),
        }
    }
}

/// How an outcome reads in a description.
fn word(output: &Output) -> &'static str {
    match output {
        Output::Read(_) => "returned a value",
        Output::Write => "acknowledged",
        Output::Cas(true) => "reported the swap applied",
        Output::Cas(false) => "reported the compare failed",
        Output::Unknown => "outcome unknown",
        Output::Failed => "failed",
    }
}
