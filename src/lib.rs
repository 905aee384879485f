//! credvault: a credential vault for cloud-provider keys.
//!
//! Customers' Vultr, AWS, GCP and Azure keys are sealed in this process (envelope encryption),
//! stored through sqlx, handed out only through the audited use cases of [`vault::Vault`], and
//! served over gRPC (services) and a REST gateway (the dashboard).
//!
//! # Layout
//! - [`domain`]: pure types and validation rules; no I/O.
//! - [`crypto`]: master key, keyring, envelope seal/open.
//! - [`store`]: the `Store` traits and the SQLite and PostgreSQL backends; the only place SQL lives.
//! - [`auth`]: bearer tokens: issuing, parsing, checking (with a short-lived cache).
//! - [`vault`]: one method per use case: authorizes, seals/opens, persists, audits.
//! - [`verify`]: one verifier per provider; the only place provider HTTP lives.
//! - [`grpc`]: tonic services and the single `Status` mapping.
//! - [`rest`]: the axum gateway for the dashboard and the single HTTP status mapping.
//! - [`metrics`]: Prometheus counters and latency histograms for both transports.
//! - [`jobs`]: the background workers (audit chain sealer, purger), owned by the server.
//! - [`server`]: listeners, reflection, health, shutdown.
//! - [`config`]: validated configuration from flags and environment.
//! - [`private_files`]: creating files and directories only their owner can read.
//! - [`bench`]: the load generator behind `credvault bench`; [`client`]: its bearer-token client.

pub mod admin;
pub mod auth;
pub mod bench;
pub mod call_log;
pub mod client;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod import;
pub mod jobs;
pub mod metrics;
pub mod private_files;
pub mod rest;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod vault;
pub mod verify;

/// Code generated from `proto/credvault/v1`.
pub mod proto {
    #![allow(clippy::all, unreachable_pub, missing_docs)]
    tonic::include_proto!("credvault.v1");

    /// The encoded descriptor set of the credvault protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/credvault_descriptor.bin"));
}
