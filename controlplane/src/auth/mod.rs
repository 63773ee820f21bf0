//! Digest authentication. Not yet written.
