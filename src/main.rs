//! The `s3-asset-manager` command line: parses the arguments into settings (`cli`) and runs
//! the command they name (`cli::Command::run`). Invoked as `check`, `in` or `out` (the links
//! under /opt/resource), the same binary is the Concourse resource.

use std::process::ExitCode;

use s3_asset_manager::cli;
use s3_asset_manager::process::{self, Front};
use s3_asset_manager::trace;

fn main() -> ExitCode {
    if let Some(resource) = s3_asset_manager::resource::invoked_as() {
        let code = resource();
        trace::finish("resource");
        return code;
    }
    process::on_panic(" with the command you ran");
    let (cli, sources) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let runtime = match process::runtime() {
        Ok(r) => r,
        Err(e) => return process::fail(Front::Cli, &e),
    };
    let name = sources.command_name();
    let result = runtime.block_on(cli.command.run(&sources));
    trace::finish(&name);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => process::fail(Front::Cli, &e),
    }
}
