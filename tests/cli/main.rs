//! End-to-end tests of ts-principals: one test binary, a module per area.

mod activity;
mod apply;
mod attribution;
mod common;
mod diff;
mod emit_sql;
mod empty;
mod errors;
#[path = "../fake_thoughtspot/mod.rs"]
mod fake;
mod falcon;
mod fetch;
mod generate;
mod import;
mod layering;
mod postgres;
mod runs;
mod secrets;
mod snapshots;
mod spec;
mod tls;
mod tml;
mod transfer;
