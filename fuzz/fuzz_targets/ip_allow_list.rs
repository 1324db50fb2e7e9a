//! Fuzzes the IP allow-list and CIDR parsing (`IpAllowList::parse` and its JSON form).
//!
//! Properties: no panic; a parsed list prints as CIDR texts that parse back to the same list; a list
//! lies within itself; every network address of the list is allowed by it.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use tollgate_types::IpAllowList;

fuzz_target!(|data: &[u8]| {
    // The first 16 bytes are an address to check; the rest is one CIDR text a line.
    let (address, text) = data.split_at(data.len().min(16));
    let Ok(text) = std::str::from_utf8(text) else { return };
    let entries: Vec<&str> = if text.is_empty() { Vec::new() } else { text.split('\n').collect() };
    if let Ok(list) = serde_json::from_str::<IpAllowList>(text) {
        assert_eq!(IpAllowList::parse(&list.to_strings()).as_ref(), Ok(&list));
    }
    let Ok(list) = IpAllowList::parse(&entries) else { return };
    let shown = list.to_strings();
    let again = IpAllowList::parse(&shown).expect("a list's own CIDR texts parse");
    assert_eq!(again, list, "parse -> display -> parse is the identity");
    assert_eq!(serde_json::to_value(&list).expect("serializes"), serde_json::json!(shown));
    assert!(list.is_within(&list));
    assert_eq!(list.is_unrestricted(), shown.is_empty());
    for cidr in &shown {
        let network: IpAddr = cidr.split('/').next().and_then(|ip| ip.parse().ok()).expect("a CIDR's address part");
        assert!(list.allows(Some(network)), "{cidr} allows its own network address");
    }
    let ip = match address.len() {
        16 => IpAddr::from(<[u8; 16]>::try_from(address).expect("16 bytes")),
        4.. => IpAddr::from(<[u8; 4]>::try_from(&address[..4]).expect("4 bytes")),
        _ => return,
    };
    let _ = list.allows(Some(ip));
    assert_eq!(list.allows(None), list.is_unrestricted());
});
