//! HTTP: the accept loop, the public v2 endpoints, the admin endpoints, and the one place errors
//! become statuses. Handlers are plain async functions of `(Arc<App>, Request)`, so tests can
//! call them without a socket.

pub mod admin;
pub mod error;
pub mod public;
pub mod server;
mod shadow;
