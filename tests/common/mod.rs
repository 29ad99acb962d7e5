//! Shared harness of the integration tests: a real Samba AD DC ([`samba`]), the graph-sim
//! binary ([`sim`]) and the entra-writeback binary driven through its contract ([`service`]).
#![allow(dead_code)]

pub mod samba;
pub mod service;
pub mod sim;
