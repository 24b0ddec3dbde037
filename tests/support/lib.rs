//! Shared helpers for the end-to-end tests that drive the real `hanode` binary and `etcdctl`.

pub mod etcd;
pub mod kubectl;
pub mod proc;
