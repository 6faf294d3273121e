//! ts-principals: make ThoughtSpot users, groups and memberships searchable,
//! reviewable and version-controlled.
//!
//! The flow is [`input`] → [`model`] → data ([`sink`]) and TML ([`render`])
//! → [`generate`]d in memory → [`output`] on disk, or a [`diff`] against it.
#![warn(missing_docs)]

/// Writing a file atomically, and locks that make runs take turns.
pub mod atomic;
/// The command line.
pub mod cli;
/// Fetching principals from a live cluster (REST v2, v1 fallback).
pub mod client;
/// The project config file, `ts-principals.toml`.
pub mod config;
/// Comparing a rendering with an output directory.
pub mod diff;
/// The main job in memory: principals → data + TML + manifest.
pub mod generate;
/// Reading principals from snapshot and API-response files.
pub mod input;
/// The normalized model of users, groups, orgs and memberships.
pub mod model;
/// Writing an output set to disk without leaving it half-written.
pub mod output;
mod parallel;
/// Rendering TML from templates, and checking it.
pub mod render;
/// The data tables: names and columns.
pub mod schema;
/// Writing the data tables.
pub mod sink;
