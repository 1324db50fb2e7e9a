//! Requests built from the published OpenAPI document: path, query, headers and body, each
//! generated from the schema the document gives for it.

#![allow(unreachable_pub)]

pub mod generate;

use serde_json::Value;

pub use generate::Generator;

/// One generated request, before a credential is added.
#[derive(Debug)]
pub struct GeneratedRequest {
    pub method: String,
    /// The path with its parameters filled in and percent-encoded, and the query string.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

/// Percent-encodes `text` as one path segment (RFC 3986 unreserved characters stay).
fn path_segment(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A query parameter's value as text (objects and arrays do not occur in this API's queries).
fn query_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl<'a> Generator<'a> {
    /// A request for `operation` at `path` valid by every schema the document gives.
    pub fn request(&mut self, path: &str, method: &str, operation: &Value) -> GeneratedRequest {
        let no_parameters = Vec::new();
        let parameters = operation.get("parameters").and_then(Value::as_array).unwrap_or(&no_parameters);
        let mut filled = path.to_owned();
        let mut query = form_urlencoded::Serializer::new(String::new());
        let mut has_query = false;
        let mut headers = Vec::new();
        for parameter in parameters {
            let name = parameter["name"].as_str().expect("a parameter name");
            let required = parameter["required"].as_bool().unwrap_or(false);
            let place = parameter["in"].as_str().expect("a parameter location");
            if !required && self.coin() {
                continue;
            }
            let value = self.value(&parameter["schema"]);
            match place {
                "path" => filled = filled.replace(&format!("{{{name}}}"), &path_segment(&query_text(&value))),
                "query" => {
                    query.append_pair(name, &query_text(&value));
                    has_query = true;
                }
                "header" => headers.push((name.to_owned(), query_text(&value))),
                other => panic!("parameter in {other}"),
            }
        }
        if has_query {
            filled.push('?');
            filled.push_str(&query.finish());
        }
        let body = operation.pointer("/requestBody/content/application~1json/schema").map(|schema| self.value(schema));
        GeneratedRequest { method: method.to_ascii_uppercase(), uri: filled, headers, body }
    }
}
