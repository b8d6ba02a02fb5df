//! `kestrel`: the command line of [`kestrel_runtime`] with the built-in strategies.

use kestrel_runtime::strategies::BuiltIn;

fn main() -> std::process::ExitCode {
    kestrel_runtime::cli::main::<BuiltIn>()
}
