//! s3-asset-manager: build each CI asset set once.
//!
//! The engine ([`engine::Engine`]) finds a commit's asset set in a bucket, restores it from a
//! cache keyed by a hash of the source files, or publishes it; every front end (the task
//! entrypoints, the command line and the Concourse resource) calls it.

pub mod assets;
pub mod beneath;
pub mod cli;
pub mod codehash;
pub mod commit;
pub mod engine;
pub mod error;
pub mod layout;
pub mod log;
pub mod manifest;
pub mod process;
pub mod resource;
pub mod settings;
pub mod signing;
pub mod sink;
pub mod store;
pub mod trace;

pub use engine::{CacheMode, CodeHashSpec, Engine, Outcome, Report};
pub use error::{Error, Result};
