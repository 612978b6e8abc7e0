fn main() -> std::process::ExitCode {
    clawplane_server::cli_main()
}
