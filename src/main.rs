fn main() -> std::process::ExitCode {
    dns_oops::cli::main()
}
