//! The `s3-asset-manager` command line; invoked as `check`, `in` or `out` (the links under
//! /opt/resource), the same binary is the Concourse resource. Everything is in the library
//! ([`s3_asset_manager::cli::main`]).

fn main() -> std::process::ExitCode {
    s3_asset_manager::cli::main()
}
