//! Black-box tests: each starts the real server in-process on an ephemeral port and talks to it
//! with the generated tonic client (and the real grpcurl), as users do. The behavioural suite
//! runs twice, against SQLite and against PostgreSQL (a throwaway cluster, see `pg`).

// Helpers are `pub` for the sibling test modules; nothing here is a public API.
#![allow(unreachable_pub)]

#[macro_use]
mod helpers;

mod audit_chain;
mod auth;
mod bad_input;
mod bench;
mod cli;
mod contract;
mod customer_keys;
mod customers;
mod cycle;
mod dashboard;
mod db;
mod echo;
mod encryption;
mod fakes;
mod faults;
mod grpcurl;
mod idempotency;
mod import;
mod listing;
mod pg;
mod preference;
mod readme;
mod recovery;
mod rest;
mod reverify;
mod rotation;
mod schemathesis;
mod server;
mod shared_database;
mod store_suite;
mod tenancy;
mod tls;
mod verify;
mod versions;
