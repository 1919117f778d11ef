//! Fuzz harnesses for Ferrolite. Each harness module is plain stable Rust with no libFuzzer
//! dependency, so the workspace's replay tests include the same source (`#[path]`) and run every
//! saved input through exactly the code the fuzz targets run.

pub mod convert;
pub mod model;
pub mod mutate;
