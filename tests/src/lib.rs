//! See tests/conformance.
