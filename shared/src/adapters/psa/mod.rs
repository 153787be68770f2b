//! The PSAs a company's ticket lives in: ConnectWise, HaloPSA, Autotask, or none.

pub mod autotask;
pub mod connectwise;
pub mod halopsa;
pub mod no_psa;
mod text;
