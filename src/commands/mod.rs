//! The binary's commands beside `main.rs`'s tree: what several commands share ([`common`]) and
//! the imports ([`import`]), the master key's status ([`key`]).

pub(crate) mod common;
pub(crate) mod import;
pub(crate) mod key;
