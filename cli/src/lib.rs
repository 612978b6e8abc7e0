//! Client subcommands of the `clawplane` binary.
