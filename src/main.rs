//! voxgate: session border controller, PBX and media server in one binary.

fn main() {}
