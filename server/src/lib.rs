//! The clawplane gateway.
pub fn cli_main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
