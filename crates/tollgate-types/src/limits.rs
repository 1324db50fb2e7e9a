//! Per-token restrictions: the IP allow-list and the allowed tools. An empty list restricts nothing.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::permission::parse_identifier;

/// At most this many entries in one list, to bound row size and check cost.
const MAX_ENTRIES: usize = 256;

/// CIDR ranges (IPv4 or IPv6) a token may be used from. A bare address means a single host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowList(Vec<IpNet>);

impl Serialize for IpAllowList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl IpAllowList {
    /// Parses CIDR texts such as `10.0.0.0/8`, `2001:db8::/32` or `192.0.2.7`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, ValidationError> {
        if entries.len() > MAX_ENTRIES {
            return Err(ValidationError::new("ip_allow", format!("must have at most {MAX_ENTRIES} entries")));
        }
        let mut networks = Vec::with_capacity(entries.len());
        for entry in entries {
            let text = entry.as_ref().trim();
            let network = text.parse::<IpNet>().or_else(|_| text.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                ValidationError::new(
                    "ip_allow",
                    format!("entry {} is not an IP address or CIDR range", networks.len() + 1),
                )
            })?;
            networks.push(network.trunc());
        }
        networks.sort();
        networks.dedup();
        Ok(Self(networks))
    }

    /// Whether the list restricts nothing.
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every range of this list lies inside a range of `outer` (so this list allows no
    /// address `outer` refuses, as long as neither is empty).
    pub fn is_within(&self, outer: &IpAllowList) -> bool {
        self.0.iter().all(|inner| outer.0.iter().any(|range| range.contains(inner)))
    }

    /// Whether `ip` may use the token. An IPv4-mapped IPv6 address is checked as IPv4.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(ip) = ip else { return false };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// The ranges as CIDR texts.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl<'de> Deserialize<'de> for IpAllowList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&entries).map_err(serde::de::Error::custom)
    }
}

/// Tool names a token may call (an LLM gateway's tools or endpoints): identifiers of `a-z 0-9 : _ . / -`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ToolList(Vec<String>);

impl ToolList {
    /// Validates tool names.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, ValidationError> {
        if entries.len() > MAX_ENTRIES {
            return Err(ValidationError::new("allowed_tools", format!("must have at most {MAX_ENTRIES} entries")));
        }
        let mut tools = entries
            .iter()
            .map(|entry| parse_identifier("allowed_tools", entry.as_ref().trim(), 128))
            .collect::<Result<Vec<_>, _>>()?;
        tools.sort();
        tools.dedup();
        Ok(Self(tools))
    }

    /// Whether the list restricts nothing.
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every tool of this list is in `outer`.
    pub fn is_within(&self, outer: &ToolList) -> bool {
        self.0.iter().all(|tool| outer.0.contains(tool))
    }

    /// Whether calling `tool` is allowed. With a restriction in place, a request naming no tool is refused.
    pub fn allows(&self, tool: Option<&str>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        tool.is_some_and(|tool| self.0.iter().any(|allowed| allowed == tool))
    }

    /// The tool names.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ToolList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&entries).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn cidr_lists_allow_members_only() {
        let list = IpAllowList::parse(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]).unwrap();
        assert!(list.allows(ip("10.1.2.3")));
        assert!(list.allows(ip("::ffff:10.9.9.9")));
        assert!(list.allows(ip("2001:db8::1")));
        assert!(list.allows(ip("192.0.2.7")));
        assert!(!list.allows(ip("192.0.2.8")));
        assert!(!list.allows(None));
        assert!(IpAllowList::default().allows(None));
    }

    #[test]
    fn invalid_cidr_names_the_field() {
        let error = IpAllowList::parse(&["10.0.0.0/33"]).unwrap_err();
        assert_eq!(error.field, "ip_allow");
        assert!(IpAllowList::parse(&["banana"]).is_err());
    }

    #[test]
    fn tool_lists_match_exactly() {
        let tools = ToolList::parse(&["search", "code:exec"]).unwrap();
        assert!(tools.allows(Some("search")));
        assert!(!tools.allows(Some("browse")));
        assert!(!tools.allows(None));
        assert!(ToolList::default().allows(None));
        assert_eq!(ToolList::parse(&["Bad Tool"]).unwrap_err().field, "allowed_tools");
    }
}
