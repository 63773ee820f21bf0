//! Shared test harness for voxgate's integration tests: starts the real binary on ephemeral
//! loopback ports and talks SIP and HTTP to it.
