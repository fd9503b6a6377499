//! Concourse `check`: JSON on stdin, the versions on stdout.
use s3_asset_manager::resource;

fn main() -> std::process::ExitCode {
    resource::main(|input| async move { resource::check(resource::parse_request(&input)?).await })
}
