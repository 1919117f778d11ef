//! `ferrolite`: inspect and run `.tflite` models. All the work is in the library crate.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug (a panic) still ends in one `error:` line, not a multi-line trace.
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string().replace('\n', " ");
        eprintln!("error: internal error, please report it: {text}");
    }));
    let cli = ferrolite_converter::cli::Cli::parse();
    match ferrolite_converter::execute(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ferrolite_converter::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
