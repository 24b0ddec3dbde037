//! The hanode server: configuration, bootstrap (init, join, restart), and the wiring of the
//! store and its TLS listeners. `cmd/hanode` and the test kit build servers through
//! [`Server::build`] with listeners they bound themselves.

pub mod api;
pub mod certs;
pub mod client;
mod config;
mod control_plane;
pub mod join;
mod kubeconfig;
mod server;
pub mod state;
mod tls;

pub use config::{
    Bootstrap, Config, ConfigError, DEFAULT_API_PORT, DEFAULT_DATA_DIR, DEFAULT_ETCD_PORT,
    DEFAULT_PEER_PORT, Role, StorageEndpoints, default_advertise_address, default_node_name,
};
pub use server::{Listeners, Server, ServerError, Urls};
