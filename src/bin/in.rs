//! Concourse `in` (`get`): JSON on stdin, the destination directory as argv[1].
use s3_asset_manager::resource;

fn main() -> std::process::ExitCode {
    resource::main(|input| async move {
        let dest = resource::dir_arg()?;
        resource::fetch(resource::parse_request(&input)?, &dest).await
    })
}
