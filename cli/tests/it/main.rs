//! The CLI's integration tests, one binary: the real `revoke365` binary as people and scripts
//! use it, against the sandbox tenant and (`--aws`) LocalStack and DynamoDB Local.
//! One module: `cargo test -p revoke365-cli --test it -- restore::`.

mod kit;

mod cert;
mod cli;
mod contain;
mod folders;
mod history;
mod index;
mod onboard;
mod restore;
mod sandbox;
mod watch;
