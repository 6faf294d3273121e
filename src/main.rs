//! The `ts-principals` binary; the library does the work.

fn main() -> std::process::ExitCode {
    ts_principals::cli::main()
}
