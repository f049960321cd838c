//! The test harness: the embedded LocalStack and a local Ethereum node, installed and started
//! from scratch by this project, and stopped again by pid.

pub mod anvil;
pub mod localstack;
pub mod process;
