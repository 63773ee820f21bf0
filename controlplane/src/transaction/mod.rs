//! RFC 3261 §17 transactions. Not yet written.
