use std::process::ExitCode;

fn main() -> ExitCode {
    vendor_server::cli::main()
}
