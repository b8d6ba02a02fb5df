//! `opening-range`: the whole kestrel command line with the built-in strategies and
//! `kind = "opening_range"`.

fn main() -> std::process::ExitCode {
    kestrel_runtime::cli::main::<opening_range::Strategies>()
}
