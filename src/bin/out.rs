//! Concourse `out` (`put`): JSON on stdin, the build's directory as argv[1].
use s3_asset_manager::resource;

fn main() -> std::process::ExitCode {
    resource::main(|input| async move {
        let base = resource::dir_arg()?;
        resource::put(resource::parse_request(&input)?, &base).await
    })
}
