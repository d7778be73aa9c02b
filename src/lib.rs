#![forbid(unsafe_code)]
//! dendrite: a pattern memory whose neurons learn unions of sparse distributed representations on
//! dendritic segments, and answer every recognition with the theory's error probabilities.
//!
//! The modules, from the maths outwards:

/// The theory's probabilities in log space (pure: std only).
pub mod theory;

/// Every quantity of the theory for one parameter set: what `dendrite theory` prints.
pub mod analysis;

/// A seeded random number generator with a stream fixed forever.
pub mod rng;

/// The JSON form of the theory's numbers.
pub mod json;

/// The pattern memory engine (pure: no HTTP, SQL or async).
pub mod engine;

/// The standard benchmark workload.
pub mod workload;

/// The command line.
pub mod cli;

/// Durable state in SQLite and the write path (group commit).
pub mod store;

/// The REST API.
pub mod http;

/// The service's settings.
pub mod config;

/// Logging.
pub mod telemetry;

/// Building and running the service.
pub mod app;
