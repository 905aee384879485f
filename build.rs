//! Compiles `proto/` with protox (pure Rust, so no system `protoc`) and writes the descriptor
//! set that server reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        [
            "credvault/v1/credentials.proto",
            "credvault/v1/customers.proto",
            "credvault/v1/audit.proto",
            "credvault/v1/keys.proto",
        ],
        ["proto"],
    )?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("credvault_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
