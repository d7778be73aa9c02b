//! The engine's rules, its agreement with the plain oracle and with the theory, and
//! concurrency: one file per concern, sharing `helpers`.

mod helpers;
mod learning;
mod oracle;
mod recognition;
mod reports;
mod theory;
