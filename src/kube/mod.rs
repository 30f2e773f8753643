//! Kubernetes adapter: the client, and (as they land) the watches that feed the index and the patch
//! that triggers ESO.

pub mod client;
