//! End-to-end tests of ts-principals: one test binary, a module per area.

mod common;
mod diff;
mod errors;
mod generate;
mod snapshots;
mod tml;
