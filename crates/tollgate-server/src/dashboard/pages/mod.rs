//! The dashboard's pages, one module per area.

pub(crate) mod access;
pub(crate) mod agent;
pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod live;
pub(crate) mod overview;
pub(crate) mod sign_in;
pub(crate) mod tokens;
pub(crate) mod usage;
pub(crate) mod users;
