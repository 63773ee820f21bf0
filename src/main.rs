//! voxgate: session border controller, PBX and media server in one binary.
//!
//! The binary owns everything that touches the outside world: the CLI, config files and
//! reload, sockets (the SIP driver), TLS, the admin HTTP API and Prometheus export. Protocol
//! logic lives in `voxgate-controlplane`; media in `voxgate-dataplane`.

mod admin;
mod config;
mod driver;
mod logging;
mod metrics;
mod tls;

fn main() {}
