//! The schemas many operations share, each stating every rule its validator enforces: ids, text,
//! names, passwords, cursors, path parameters. One function per kind of value, so a rule is
//! written once for the document and checked against the server by `tests/openapi_contract.rs`.

use serde_json::{Value, json};

/// A character that is not a control character (what `char::is_control` refuses: C0, DEL, C1).
const PRINTABLE: &str = r"[^\x00-\x1f\x7f-\x9f]";

/// An RFC 3339 UTC time.
pub(crate) fn timestamp(description: &str) -> Value {
    json!({ "type": "string", "format": "date-time", "description": description })
}

/// `schema` or `null`.
pub(crate) fn nullable(mut schema: Value) -> Value {
    match schema.get_mut("type") {
        Some(Value::String(kind)) => {
            let kind = std::mem::take(kind);
            schema["type"] = json!([kind, "null"]);
            schema
        }
        _ => json!({ "oneOf": [schema, { "type": "null" }] }),
    }
}

/// A typed public id such as `tok_0192…`.
pub(crate) fn id(prefix: &str, description: &str) -> Value {
    json!({
        "type": "string",
        "pattern": format!("^{prefix}[0-9a-f]{{32}}$"),
        "description": description,
    })
}

/// Human text: 1 to `max` characters, not only spaces, no control characters.
pub(crate) fn text(max: usize, description: &str) -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": max, "description": description,
        "pattern": format!(r"^{PRINTABLE}*[^\s\x00-\x1f\x7f-\x9f]{PRINTABLE}*$"),
    })
}

/// Notes that may be empty: at most `max` characters, no control characters.
pub(crate) fn notes(max: usize, description: &str) -> Value {
    json!({
        "type": "string", "maxLength": max, "description": description,
        "pattern": format!("^{PRINTABLE}*$"),
    })
}

/// A machine identifier (providers, scopes, tools): 1 to `max` of `a-z 0-9 : _ . / -`.
pub(crate) fn identifier(max: usize, description: &str) -> Value {
    json!({ "type": "string", "pattern": format!("^[a-z0-9:_./-]{{1,{max}}}$"), "description": description })
}

/// A model name: 1 to 128 of `a-z 0-9 : _ . / -`.
pub(crate) fn model(description: &str) -> Value {
    identifier(128, description)
}

/// The endpoint or tool a call went to: 1 to 256 of `a-z 0-9 : _ . / -`.
pub(crate) fn endpoint() -> Value {
    identifier(256, "e.g. /v1/chat/completions")
}

/// An IPv4 octet without leading zeros (as Rust's parser wants).
const OCTET: &str = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
/// One group of an IPv6 address.
const GROUP: &str = "[0-9a-fA-F]{1,4}";

fn ipv4() -> String {
    format!("{OCTET}(\\.{OCTET}){{3}}")
}

/// IPv6 in full or `::`-compressed form (embedded IPv4 and zones are not accepted by the schema).
fn ipv6() -> String {
    let g = GROUP;
    [
        format!("({g}:){{7}}{g}"),
        format!("({g}:){{1,7}}:"),
        format!("({g}:){{1,6}}:{g}"),
        format!("({g}:){{1,5}}(:{g}){{1,2}}"),
        format!("({g}:){{1,4}}(:{g}){{1,3}}"),
        format!("({g}:){{1,3}}(:{g}){{1,4}}"),
        format!("({g}:){{1,2}}(:{g}){{1,5}}"),
        format!("{g}:(:{g}){{1,6}}"),
        format!(":((:{g}){{1,7}}|:)"),
    ]
    .join("|")
}

/// An IPv4 or IPv6 address.
pub(crate) fn ip_address(description: &str) -> Value {
    json!({ "type": "string", "pattern": format!("^({}|{})$", ipv4(), ipv6()), "description": description })
}

/// An address or a CIDR range, IPv4 or IPv6 (host bits are cleared).
pub(crate) fn cidr() -> Value {
    let v4 = format!("{}(/(3[0-2]|[12]?[0-9]))?", ipv4());
    let v6 = format!("({})(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?", ipv6());
    json!({ "type": "string", "pattern": format!("^({v4}|{v6})$"), "examples": ["10.0.0.0/8", "2001:db8::/32"] })
}

/// The cursor of a list of groups: the last group's key.
pub(crate) fn group_cursor() -> Value {
    json!({
        "type": "string", "minLength": 1, "maxLength": 256, "pattern": format!("^{PRINTABLE}*$"),
        "description": "`next_cursor` of the previous page of groups.",
    })
}

/// A username or service-account name: 3 to 64 of `a-z 0-9 . _ -` (letters in either case, kept
/// lowercase), and not shaped like an id.
pub(crate) fn username(description: &str) -> Value {
    json!({
        "type": "string", "pattern": "^[A-Za-z0-9._-]{3,64}$", "description": description,
        "not": { "pattern": "^(?:[Uu][Ss][Rr]|[Ss][Vv][Cc])_[0-9a-fA-F]{32}$" },
    })
}

/// A user or service account, by id or name.
pub(crate) fn owner_reference(description: &str) -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{3,64}$", "description": description })
}

/// A password as presented: 1 to 72 bytes without NUL. JSON Schema counts characters, so the
/// byte limit is stated as "at most 18 characters (4 bytes each at most), or ASCII up to 72".
pub(crate) fn password(min_chars: usize, description: &str) -> Value {
    json!({
        "type": "string", "writeOnly": true, "minLength": min_chars, "description": description,
        "anyOf": [
            { "maxLength": 18, "pattern": r"^[^\x00]*$" },
            { "maxLength": 72, "pattern": r"^[\x01-\x7f]*$" },
        ],
    })
}

/// Any text of at most `max_bytes` bytes of UTF-8. JSON Schema counts characters, so the limit is
/// stated as "at most a quarter as many characters (4 bytes each at most), or ASCII up to the limit".
pub(crate) fn utf8_bytes(max_bytes: usize, description: &str) -> Value {
    json!({
        "type": "string", "description": description,
        "anyOf": [{ "maxLength": max_bytes / 4 }, { "maxLength": max_bytes, "pattern": r"^[\x00-\x7f]*$" }],
    })
}

/// The `cursor` of a list whose pages are keyed by `key` (a pattern without anchors).
pub(crate) fn cursor(key: &str) -> Value {
    json!({
        "type": "string", "pattern": format!("^{key}$"),
        "description": "`next_cursor` of the previous page.",
    })
}

/// The pattern of ids with `prefix` (for [`cursor`]).
pub(crate) fn id_key(prefix: &str) -> String {
    format!("{prefix}[0-9a-f]{{32}}")
}

/// The schema of the `{name}` segment of `path`: the id, name or kind the route takes there.
pub(crate) fn path_parameter(path: &str, name: &str) -> Value {
    let segments: Vec<&str> = path.split('/').collect();
    let at = segments.iter().position(|segment| *segment == format!("{{{name}}}")).unwrap_or(0);
    let before = if at > 0 { segments[at - 1] } else { "" };
    let typed = |prefix: &str| json!({ "type": "string", "pattern": format!("^{prefix}[0-9a-f]{{32}}$") });
    match (before, name) {
        ("tokens", _) => typed("tok_"),
        ("users", _) => typed("usr_"),
        ("service-accounts", _) => typed("svc_"),
        ("projects", _) => typed("prj_"),
        ("agents", _) => typed("agt_"),
        ("credentials", _) => typed("tok_"),
        ("leases", _) => typed("bls_"),
        ("requests", _) => typed("brq_"),
        ("provider-keys", _) => typed("pk_"),
        ("reservations", _) => typed("rsv_"),
        ("sessions", _) => typed("ses_"),
        ("traces", _) => typed("trc_"),
        ("members", _) => typed("(usr|svc)_"),
        ("limits", "kind") => json!({ "type": "string", "enum": ["token", "user", "service_account", "project"] }),
        (_, "id") if segments.contains(&"limits") => {
            json!({ "type": "string", "pattern": "^(tok|usr|svc|prj)_[0-9a-f]{32}$" })
        }
        (_, "name") if segments.contains(&"limits") => {
            json!({ "type": "string", "pattern": "^(requests|tokens|cost)_per_(minute|hour|day|month)$" })
        }
        ("prices", "provider") => identifier(64, "e.g. openai"),
        (_, "model") => model("e.g. gpt-4o-mini"),
        _ => panic!("no schema for path parameter {name} of {path}"),
    }
}

/// A header value of 1 to `max` visible ASCII characters (spaces inside only).
pub(crate) fn header_text(max: usize) -> Value {
    json!({ "type": "string", "pattern": format!("^[!-~]([ -~]{{0,{}}}[!-~])?$", max - 2) })
}

/// `X-Tollgate-Reserve`: comma-separated `key=value` pairs, each key at most once (checked by the server).
pub(crate) fn reserve_header() -> Value {
    let pair = concat!(
        "(provider=[a-z0-9:_./-]{1,64}|model=[A-Za-z0-9._:/-]{1,128}",
        "|max_input_tokens=[0-9]{1,9}|max_output_tokens=[0-9]{1,9}|cost_micros=[0-9]{1,12})"
    );
    json!({ "type": "string", "pattern": format!("^{pair}(, ?{pair}){{0,4}}$") })
}

/// A token count of one event or estimate: 0 to [`tollgate::MAX_TOKENS_PER_EVENT`].
pub(crate) fn token_count(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": tollgate::MAX_TOKENS_PER_EVENT, "description": description })
}

/// Money of one event or estimate, in microdollars: 0 to one million dollars.
pub(crate) fn event_cost(description: &str) -> Value {
    json!({
        "type": "integer", "minimum": 0, "maximum": tollgate::MAX_COST_PER_EVENT.micros(), "description": description,
    })
}

/// A latency in milliseconds: 0 to one day.
pub(crate) fn latency() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": tollgate::MAX_LATENCY_MS })
}

/// Requests one usage event stands for: 0 to [`tollgate::MAX_REQUESTS_PER_EVENT`], default 1.
pub(crate) fn request_count() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": tollgate::MAX_REQUESTS_PER_EVENT, "default": 1 })
}

/// A lease's lifetime in seconds: 1 to one day.
pub(crate) fn lease_ttl(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 86_400, "description": description })
}

/// A provider's API address: `https://` and a host, no spaces or control characters (plain
/// `http://` is accepted for localhost, which the schema leaves out).
pub(crate) fn base_url(description: &str) -> Value {
    json!({
        "type": "string", "maxLength": 2048, "description": description,
        "pattern": r"^https://[^\s\x00-\x1f\x7f-\x9f/?#@]+(/[^\s\x00-\x1f\x7f-\x9f?#]*)?$",
    })
}

/// An amount of dollars as text, at most one million, with up to six decimals.
pub(crate) fn dollars(description: &str) -> Value {
    json!({
        "type": "string", "description": description,
        "pattern": r"^([0-9]{1,6}(\.[0-9]{1,6})?|1000000(\.0{1,6})?)$",
    })
}
