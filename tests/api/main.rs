//! Black-box tests: each starts the real server in-process on an ephemeral port with its own
//! SQLite file, and talks to it with the generated tonic client, as users do.

// Helpers are `pub` for the sibling test modules; nothing here is a public API.
#![allow(unreachable_pub)]

mod bad_input;
mod cli;
mod cycle;
mod encryption;
mod grpcurl;
mod helpers;
mod idempotency;
mod listing;
mod preference;
mod server;
