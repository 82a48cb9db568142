//! Domain newtypes shared by every layer: prefixed identifiers and exact money amounts.

pub mod ids;
pub mod input;
pub mod money;
