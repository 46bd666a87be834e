//! Cluster mode: several nodes share lineages, the ACME account and alert
//! state through etcd; one node orders, every node answers challenges and
//! deploys. Design and operator's guide: docs/cluster.md.

pub mod alerts;
pub mod cache;
pub mod config;
pub mod decide;
pub mod etcd;
pub mod keys;
pub mod model;
pub mod node;
pub mod order;
pub mod seal;
pub mod status;
pub mod sync;
