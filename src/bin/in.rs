//! Concourse `in` (`get`): JSON on stdin, the destination directory as `argv[1]`.
//! The image links `/opt/resource/in` to the multi-call `s3-asset-manager` instead, which
//! runs the same function; this binary serves `cargo install` and local use.

fn main() -> std::process::ExitCode {
    s3_asset_manager::resource::run_in()
}
