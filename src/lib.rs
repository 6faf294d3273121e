//! ts-principals: make ThoughtSpot users, groups and memberships searchable,
//! reviewable and version-controlled.
//!
//! The flow is [`input`] → [`model`] → data ([`sink`]) and TML ([`render`])
//! → [`generate`]d in memory → [`output`] on disk, or a [`diff`] against it.
#![warn(missing_docs)]

pub mod activity;
pub mod apply;
pub mod atomic;
pub mod cli;
pub mod client;
pub mod config;
pub mod diff;
pub mod generate;
pub mod group_activity;
pub mod history;
pub mod import;
pub mod input;
pub mod load;
pub mod model;
pub mod output;
mod parallel;
pub mod plan;
pub mod render;
pub mod schema;
pub mod sink;
pub mod spec;
pub mod transfer;
