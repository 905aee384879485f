//! The binary's commands beside `main.rs`'s tree: what several commands share ([`common`]) and
//! the imports ([`import`]).

pub(crate) mod common;
pub(crate) mod import;
