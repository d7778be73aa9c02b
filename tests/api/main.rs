//! The service over HTTP: one test binary (it links once), a real server per test on port 0.

mod access;
mod backups;
mod calibration;
mod connections;
mod contract;
mod encoders;
mod errors;
mod failures;
mod faults;
mod hardening;
mod helpers;
mod isolation;
mod lifecycle;
mod limits;
mod metadata;
mod metrics;
mod patterns;
mod persistence;
mod postgres;
mod queries;
mod sequences;
mod shards;
mod transfer;
