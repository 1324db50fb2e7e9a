//! Who is calling a mutating operation and from where: the principal that authorization checks,
//! plus the client address the audit log records.

use std::net::IpAddr;

use tollgate_types::Principal;

/// The acting principal and, when known, the client's IP address.
///
/// Mutations of users and sessions take a `Caller` (they are audited with the address); reads take
/// a plain [`Principal`].
///
/// ```
/// # use tollgate::{Caller, Principal};
/// let caller = Caller::new(Principal::Operator).with_ip(Some("192.0.2.7".parse().unwrap()));
/// assert_eq!(caller.principal, Principal::Operator);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where, when known (the HTTP server passes the client address; the CLI passes none).
    pub ip: Option<IpAddr>,
}

impl Caller {
    /// A caller with no known address.
    pub fn new(principal: Principal) -> Self {
        Self { principal, ip: None }
    }

    /// The operator at the shell (the `tollgate` CLI): may do everything.
    pub fn operator() -> Self {
        Self::new(Principal::Operator)
    }

    /// The same caller, from `ip`.
    pub fn with_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }
}

impl From<Principal> for Caller {
    fn from(principal: Principal) -> Self {
        Self::new(principal)
    }
}
