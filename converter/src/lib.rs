//! The `ferrolite` command-line tool, as a library so its pieces can be tested and reused:
//! [`cli`] parses arguments, [`run`] invokes a model on `.npy` inputs, [`inspect`] describes a
//! model, [`npy`] maps tensors to and from `.npy` files, [`load`] reads models and sizes arenas.

pub mod bench;
pub mod calibrate;
pub mod cli;
pub mod convert;
pub mod eval;
pub mod graph;
pub mod import;
pub mod inspect;
pub mod load;
pub mod npy;
pub mod quantize;
pub mod run;

use cli::{Cli, Command};

/// Runs one parsed command line.
pub fn execute(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Run(args) => run::run(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Bench(args) => bench::bench(args),
        Command::Eval(args) => eval::eval(args),
        Command::Convert(args) => convert::convert(args),
    }
}

/// An error and its causes as one line (`outer: inner: root cause`), for `error: ...` on stderr.
pub fn error_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.split(['\n', '\r']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("; ")
}
