//! Values valid by a JSON Schema (the subset `/openapi.json` uses), for the contract test: every
//! constraint the schema states is honoured, and everything it leaves open is exercised — any
//! characters where no pattern is given, any size where no bound is, optional fields present or not.

use std::collections::HashMap;

use proptest::prelude::RngCore;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

/// Generates instances of schemas that may refer to `#/components/schemas/…`.
pub struct Generator<'a> {
    components: &'a Map<String, Value>,
    runner: TestRunner,
    /// Strategies by pattern: parsing a pattern costs more than generating from it.
    patterns: HashMap<String, proptest::string::RegexGeneratorStrategy<String>>,
}

/// Characters for strings with no pattern: letters, digits, punctuation, spaces, other scripts,
/// emoji and control characters — whatever a schema without a pattern allows.
const ANY_CHARS: &[char] = &[
    'a', 'Z', '0', '9', ' ', '-', '_', '.', '/', ':', '@', '<', '>', '&', '"', '\'', '%', '\\', 'é', 'ß', '日', '本',
    '🦀', '\u{0}', '\t', '\n', '\u{7f}', '\u{200b}',
];

/// The longest free text generated, in characters.
const MAX_GENERATED_CHARS: usize = 8 * 1024;
/// The longest array generated.
const MAX_GENERATED_ITEMS: u64 = 250;

impl<'a> Generator<'a> {
    /// A generator over `components`, deterministic for `seed`.
    pub fn new(components: &'a Map<String, Value>, seed: u64) -> Self {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        Self { components, runner: TestRunner::new_with_rng(Config::default(), rng), patterns: HashMap::new() }
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.runner.rng().next_u64() % n }
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.below(2) == 0
    }

    /// The schema `$ref` points to, or `schema` itself.
    pub fn resolve<'b>(&self, schema: &'b Value) -> &'b Value
    where
        'a: 'b,
    {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.strip_prefix("#/components/schemas/").expect("a local component reference");
                self.resolve(&self.components[name])
            }
            None => schema,
        }
    }

    /// A value valid by `schema`.
    pub fn value(&mut self, schema: &Value) -> Value {
        let schema = self.resolve(schema);
        if let Some(constant) = schema.get("const") {
            return constant.clone();
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return options[self.below(options.len() as u64) as usize].clone();
        }
        if let Some(branches) = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array) {
            let pick = self.below(branches.len() as u64) as usize;
            let branch = self.resolve(&branches[pick]);
            // The branch adds to what the schema says beside it.
            let mut merged = schema.as_object().cloned().unwrap_or_default();
            merged.remove("oneOf");
            merged.remove("anyOf");
            if let Some(branch) = branch.as_object() {
                for (key, value) in branch {
                    match (key.as_str(), merged.get_mut(key)) {
                        ("required", Some(Value::Array(required))) => {
                            required.extend(value.as_array().into_iter().flatten().cloned());
                        }
                        _ => drop(merged.insert(key.clone(), value.clone())),
                    }
                }
            }
            // `oneOf` of `required` sets: exactly one, so the other branches' fields stay out.
            let chosen: Vec<&Value> = branch.get("required").and_then(Value::as_array).into_iter().flatten().collect();
            let others: Vec<Value> = branches
                .iter()
                .filter_map(|other| other.get("required").and_then(Value::as_array))
                .flatten()
                .filter(|name| !chosen.contains(name))
                .cloned()
                .collect();
            if schema.get("oneOf").is_some() && !others.is_empty() {
                merged.insert("x-excluded".into(), Value::Array(others));
            }
            return self.value(&Value::Object(merged));
        }
        let kind = match &schema["type"] {
            Value::String(kind) => kind.as_str(),
            Value::Array(kinds) => kinds[self.below(kinds.len() as u64) as usize].as_str().expect("a type name"),
            _ if schema.get("properties").is_some() => "object",
            other => panic!("no type in schema {schema} ({other})"),
        };
        match kind {
            "null" => Value::Null,
            "boolean" => Value::Bool(self.coin()),
            "integer" => json!(self.integer(schema)),
            "number" => json!(self.integer(schema) as f64 + if self.coin() { 0.5 } else { 0.0 }),
            "string" => Value::String(self.string(schema)),
            "array" => self.array(schema),
            "object" => self.object(schema),
            other => panic!("unknown type {other}"),
        }
    }

    fn integer(&mut self, schema: &Value) -> i64 {
        let minimum = schema.get("minimum").and_then(Value::as_i64).unwrap_or(i64::MIN / 2);
        let maximum = schema.get("maximum").and_then(Value::as_i64).unwrap_or(i64::MAX / 2);
        let minimum = schema.get("exclusiveMinimum").and_then(Value::as_i64).map_or(minimum, |bound| bound + 1);
        let maximum = schema.get("exclusiveMaximum").and_then(Value::as_i64).map_or(maximum, |bound| bound - 1);
        assert!(minimum <= maximum, "empty range in {schema}");
        let span = (maximum as i128 - minimum as i128) as u128;
        match self.below(4) {
            0 => minimum,
            1 => maximum,
            2 => minimum + (self.below(span.min(1000) as u64 + 1) as i64),
            _ => (minimum as i128 + (self.runner.rng().next_u64() as u128 % (span + 1)) as i128) as i64,
        }
    }

    fn string(&mut self, schema: &Value) -> String {
        let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        // Free text is generated up to 8 KiB: megabyte payloads only cost time, not coverage.
        let max = schema.get("maxLength").and_then(Value::as_u64).map_or(min + 300, |max| max as usize);
        let max = max.min(min.max(MAX_GENERATED_CHARS));
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let unanchored = pattern.strip_prefix('^').unwrap_or(pattern);
            let unanchored = unanchored.strip_suffix('$').unwrap_or(unanchored);
            let strategy = self.patterns.entry(pattern.to_owned()).or_insert_with(|| {
                proptest::string::string_regex(unanchored).expect("a pattern proptest can generate from")
            });
            let excluded = schema
                .pointer("/not/pattern")
                .and_then(Value::as_str)
                .map(|pattern| regex::Regex::new(pattern).expect("an excluded pattern"));
            for _ in 0..200 {
                let text = strategy.new_tree(&mut self.runner).expect("a value").current();
                if excluded.as_ref().is_some_and(|excluded| excluded.is_match(&text)) {
                    continue;
                }
                if (min..=max).contains(&text.chars().count()) {
                    return text;
                }
            }
            panic!("pattern {pattern} yields no string of {min}..={max} characters");
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => return self.date_time(),
            Some("email") => return format!("user{}@example.com", self.below(1_000_000)),
            Some("uri") => return format!("https://example.com/{}", self.below(1_000_000)),
            _ => {}
        }
        let length = match self.below(3) {
            0 => min,
            1 => max,
            _ => min + self.below((max - min) as u64 + 1) as usize,
        };
        (0..length).map(|_| ANY_CHARS[self.below(ANY_CHARS.len() as u64) as usize]).collect()
    }

    /// An RFC 3339 time between 1970 and 2100.
    fn date_time(&mut self) -> String {
        let micros = self.below(4_102_444_800) as i64 * 1_000_000;
        tollgate::Timestamp::from_unix_micros(micros).to_rfc3339()
    }

    fn array(&mut self, schema: &Value) -> Value {
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = schema.get("maxItems").and_then(Value::as_u64).unwrap_or(min + 200).min(min.max(MAX_GENERATED_ITEMS));
        let length = match self.below(3) {
            0 => min,
            1 => max,
            _ => min + self.below(max.min(min + 5) - min + 1),
        };
        let items = &schema["items"];
        let unique = schema.get("uniqueItems").and_then(Value::as_bool).unwrap_or(false);
        let mut values: Vec<Value> = Vec::new();
        let mut attempts = 0;
        while (values.len() as u64) < length {
            let value = self.value(items);
            attempts += 1;
            if !unique || !values.contains(&value) {
                values.push(value);
            } else if attempts > length * 20 {
                break;
            }
        }
        Value::Array(values)
    }

    fn object(&mut self, schema: &Value) -> Value {
        let empty = Map::new();
        let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map_or(Vec::new(), |names| names.iter().filter_map(Value::as_str).collect());
        let mut object = Map::new();
        for (name, property) in properties {
            if property.get("readOnly").and_then(Value::as_bool).unwrap_or(false) {
                continue;
            }
            if required.contains(&name.as_str()) || self.coin() {
                object.insert(name.clone(), self.value(property));
            }
        }
        let min_properties = schema.get("minProperties").and_then(Value::as_u64).unwrap_or(0) as usize;
        for (name, property) in properties {
            if object.len() >= min_properties {
                break;
            }
            if !object.contains_key(name) {
                let value = self.value(property);
                object.insert(name.clone(), value);
            }
        }
        for excluded in schema.get("x-excluded").and_then(Value::as_array).into_iter().flatten() {
            object.remove(excluded.as_str().unwrap_or(""));
        }
        // `not: {required: [a, b]}`: not all of them together.
        if let Some(exclusive) = schema.pointer("/not/required").and_then(Value::as_array) {
            let names: Vec<&str> = exclusive.iter().filter_map(Value::as_str).collect();
            if names.iter().all(|name| object.contains_key(*name)) {
                let dropped = names[self.below(names.len() as u64) as usize];
                object.remove(dropped);
            }
        }
        Value::Object(object)
    }
}
