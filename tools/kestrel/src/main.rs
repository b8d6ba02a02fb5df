//! `kestrel`: the command line of [`kestrel_runtime`] with the built-in strategies.

fn main() -> std::process::ExitCode {
    kestrel_runtime::cli::main()
}
