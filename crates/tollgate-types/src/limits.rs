//! Per-token restrictions: the IP allow-list and the allowed tools. An empty list restricts nothing.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
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
            networks.push(unmapped(network.trunc()));
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

/// An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) as the IPv4 range it maps (`10.0.0.0/8`).
/// `allows` checks a mapped client address as IPv4, so a list must hold mapped ranges as IPv4 too:
/// kept as IPv6, such an entry allowed no address at all (found by the `ip_allow_list` fuzz target).
fn unmapped(network: IpNet) -> IpNet {
    if let IpNet::V6(v6) = network
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
    {
        let prefix = v6.prefix_len() - 96;
        return IpNet::V4(Ipv4Net::new(v4, prefix).expect("a mapped prefix of 96 to 128 bits is 0 to 32 bits"));
    }
    network
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
    fn ipv4_mapped_ranges_are_held_and_checked_as_ipv4() {
        // The fuzz target's crash: a mapped /128 allowed not even its own address.
        let host = IpAllowList::parse(&["::ffff:0.1.0.43/128"]).unwrap();
        assert_eq!(host.to_strings(), ["0.1.0.43/32"]);
        assert!(host.allows(ip("::ffff:0.1.0.43")) && host.allows(ip("0.1.0.43")));
        let range = IpAllowList::parse(&["::ffff:10.0.0.0/104", "10.0.0.0/8", "::ffff:0:0/96"]).unwrap();
        assert_eq!(range.to_strings(), ["0.0.0.0/0", "10.0.0.0/8"]);
        assert!(range.allows(ip("::ffff:10.9.9.9")) && range.allows(ip("192.0.2.1")));
        assert!(!range.allows(ip("2001:db8::1")), "a mapped range says nothing of other IPv6 addresses");
        // Shorter IPv6 prefixes stay IPv6 ranges.
        assert_eq!(IpAllowList::parse(&["::/0"]).unwrap().to_strings(), ["::/0"]);
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
