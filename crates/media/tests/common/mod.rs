//! Test helpers shared by confer-media's integration tests.

pub mod pulse;
