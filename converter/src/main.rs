//! `ferrolite`: inspect and run `.tflite` models. All the work is in the library crate.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug (a panic) still ends in one `error:` line, not a multi-line trace.
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string().replace('\n', " ");
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            // The reader went away (`ferrolite bench --profile ... | head`): stop quietly, with
            // the status a shell gives a process ended by SIGPIPE.
            std::process::exit(141);
        }
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
