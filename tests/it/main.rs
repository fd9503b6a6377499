//! The integration tests, one crate: each suite is a module (`./scripts/test --test faults`
//! runs `faults::`), and all of them share `common`'s fixtures, built and linked once.

mod common;

mod attacks;
mod aws;
mod bad_input;
mod codehash;
mod conformance;
mod faults;
mod hostile;
mod image;
mod legacy;
mod network;
mod pipelines;
mod prune;
mod resource;
mod roundtrips;
mod secrets;
mod sets;
mod signing;
mod tasks;
mod trace;
