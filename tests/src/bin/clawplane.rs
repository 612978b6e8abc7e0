//! The `clawplane` binary (the same `clawplane_server::cli_main` entry point), built inside
//! the test crate so the conformance suite can spawn it via
//! `env!("CARGO_BIN_EXE_clawplane-under-test")`; cargo forbids two binaries with one name.
fn main() -> std::process::ExitCode {
    clawplane_server::cli_main()
}
