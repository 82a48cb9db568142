//! Domain newtypes shared by every layer: prefixed identifiers, exact money amounts and what one
//! pass of a background job did.

pub mod ids;
pub mod input;
pub mod money;
pub mod page;

/// What one pass of a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled this many items; run again soon.
    Processed(usize),
    /// Nothing to do; sleep longer.
    Idle,
}
