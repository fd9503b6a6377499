//! Concourse `check`: JSON on stdin, the versions on stdout.
//! The image links `/opt/resource/check` to the multi-call `s3-asset-manager` instead, which
//! runs the same function; this binary serves `cargo install` and local use.

fn main() -> std::process::ExitCode {
    s3_asset_manager::resource::run_check()
}
