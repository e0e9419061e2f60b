//! doc helpers
