//! s3-asset-manager: build each CI asset set once.
//!
//! The engine (`engine::Engine`) finds a commit's asset set in a bucket, restores it from a
//! cache keyed by a hash of the source files, or publishes it; every front end (the task
//! entrypoints, the command line and the Concourse resource) calls it.

#![warn(unreachable_pub, missing_docs)]

pub(crate) mod assets;
pub(crate) mod beneath;
pub mod cli;
pub(crate) mod codehash;
pub(crate) mod commit;
pub(crate) mod engine;
pub mod error;
pub(crate) mod layout;
pub(crate) mod log;
pub(crate) mod manifest;
pub(crate) mod process;
pub mod resource;
pub(crate) mod settings;
pub(crate) mod signing;
pub(crate) mod sink;
pub mod store;
pub(crate) mod trace;

pub use error::{Error, Result};
