//! Test-only helpers (PostgreSQL, NATS JetStream) shared by the server's unit tests and the conformance suite: real
//! servers started as child processes on 127.0.0.1, in temp dirs, that die with the test
//! process.

mod nats;
mod postgres;

pub use nats::NatsServer;
pub use postgres::PgServer;
