// Denied, not forbidden: the dense index's counting kernels (engine/index/kernel.rs) call
// CPU-specific code, which needs `unsafe`, and allow it there alone.
#![deny(unsafe_code)]
//! dendrite: a pattern memory whose neurons learn unions of sparse distributed representations on
//! dendritic segments, and answer every recognition with the theory's error probabilities.
//!
//! The modules, from the maths outwards (ARCHITECTURE.md is the map, with the rules each keeps):
//!
//! - [`theory`], the theory's probabilities in log space (pure: std, and serde for their JSON).
//! - [`analysis`], every quantity of the theory for one parameter set, for `dendrite theory` and
//!   `GET /v1/theory`.
//! - [`rng`], a seeded random number generator with a stream fixed forever.
//! - [`engine`], the pattern memory engine (pure: no HTTP, SQL or async).
//! - [`workload`], the standard benchmark workload.
//! - [`bench`](mod@bench), `dendrite bench`: the engine's speed and memory on this machine.
//! - [`cli`], the command line.
//! - [`store`], durable state in SQLite or PostgreSQL, the change log replicas follow, and the
//!   write path (group commit).
//! - [`http`], the REST API.
//! - [`config`], the service's settings.
//! - [`telemetry`], logging.
//! - [`host`], what the machine and the process have (memory, CPU time).
//! - [`app`], building and running the service.

pub mod analysis;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod engine;
pub mod host;
pub mod http;
pub mod rng;
pub mod store;
pub mod telemetry;
pub mod theory;
pub mod workload;
