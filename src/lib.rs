//! Placeholder.
pub fn placeholder() {}
