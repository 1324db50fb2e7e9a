//! The OpenAPI 3.1 document, generated from the route table (`routes.rs`) and the schemas the
//! request and response types declare next to their serde derives ([`ApiSchema`]).
//!
//! Why not utoipa: its derive crate is a large proc-macro whose `syn` features would rebuild
//! every derive in the workspace on a 2-core machine, for some 30 operations. Instead the table
//! that builds the router builds the document, and tests check that every schema matches the
//! serde shape of its type (field names in, field names out) and that every route is documented.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::routes::Operation;

mod vocab;

pub(crate) use vocab::*;

/// Produces the JSON Schema of a type, registering the component schemas it refers to.
pub(crate) type SchemaFn = fn(&mut Components) -> Value;

/// A type with a documented JSON shape. Its schema lives beside its serde derive.
pub(crate) trait ApiSchema {
    /// The component name (`CreateToken`).
    const NAME: &'static str;
    /// The JSON Schema (2020-12, as OpenAPI 3.1 uses).
    fn schema(components: &mut Components) -> Value;
}

/// `#/components/schemas`, filled as operations refer to types.
#[derive(Debug, Default)]
pub(crate) struct Components {
    schemas: BTreeMap<&'static str, Value>,
}

impl Components {
    /// Registers `T` (once) and returns a `$ref` to it.
    pub(crate) fn reference<T: ApiSchema>(components: &mut Components) -> Value {
        if !components.schemas.contains_key(T::NAME) {
            // A placeholder first, so a type that refers to itself does not recurse for ever.
            components.schemas.insert(T::NAME, Value::Null);
            let schema = T::schema(components);
            components.schemas.insert(T::NAME, schema);
        }
        json!({ "$ref": format!("#/components/schemas/{}", T::NAME) })
    }
}

/// RFC 9457 problem details with tollgate's extension members.
#[derive(Debug)]
pub(crate) struct ProblemSchema;

impl ApiSchema for ProblemSchema {
    const NAME: &'static str = "Problem";
    fn schema(_: &mut Components) -> Value {
        json!({
            "type": "object",
            "description": "RFC 9457 problem details. `code` is stable; branch on it, not on `title` or `detail`.",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": { "type": "string", "format": "uri", "examples": ["urn:tollgate:problem:invalid_field"] },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" },
                "code": { "type": "string", "examples": ["invalid_field", "revoked", "forbidden", "token_not_found"] },
                "field": { "type": "string", "description": "For invalid input: the field at fault (a JSON path)." },
                "retry_after_seconds": { "type": "integer", "minimum": 1 },
                "limit": { "type": "string", "description": "For quota_exceeded: which limit." },
                "resets_at": timestamp("For quota_exceeded: when the window resets."),
            }
        })
    }
}

/// The document for these operations.
pub(crate) fn document(operations: &[Operation]) -> Value {
    let mut components = Components::default();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for operation in operations {
        let entry = paths.entry(operation.path).or_default();
        entry.insert(operation.method.as_str().to_ascii_lowercase(), describe(operation, &mut components));
    }
    let schemas: Map<String, Value> =
        components.schemas.into_iter().map(|(name, schema)| (name.to_owned(), schema)).collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tollgate control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Issue, verify and govern API tokens. Errors are RFC 9457 problem+json with a stable `code`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A tollgate API token (`tg_…`); admin operations need permission admin.",
                },
            },
        },
    })
}

fn describe(operation: &Operation, components: &mut Components) -> Value {
    let doc = &operation.doc;
    let mut parameters = Vec::new();
    for name in path_parameters(operation.path) {
        let description = doc.path_params.iter().find(|(param, _)| *param == name).map_or("", |(_, text)| *text);
        parameters.push(json!({
            "name": name, "in": "path", "required": true, "description": description,
            "schema": path_parameter(operation.path, name),
        }));
    }
    if let Some(query) = doc.query {
        let schema = query(components);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                let mut property = property.clone();
                let description = property.as_object_mut().and_then(|object| object.remove("description"));
                parameters.push(json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "description": description.unwrap_or(Value::String(String::new())),
                    "schema": property,
                }));
            }
        }
    }
    for (name, description, schema) in &doc.headers {
        parameters.push(json!({
            "name": name, "in": "header", "required": false, "description": description, "schema": schema,
        }));
    }
    let mut responses = Map::new();
    for response in &doc.responses {
        let mut object = Map::new();
        object.insert("description".into(), Value::String(response.description.to_owned()));
        let schema = response.schema.map(|schema| schema(components)).unwrap_or_else(|| json!({ "type": "string" }));
        object.insert("content".into(), json!({ response.media_type: { "schema": schema } }));
        if !response.headers.is_empty() {
            let headers: Map<String, Value> = response
                .headers
                .iter()
                .map(|name| ((*name).to_owned(), json!({ "schema": { "type": "string" } })))
                .collect();
            object.insert("headers".into(), Value::Object(headers));
        }
        responses.insert(response.status.to_string(), Value::Object(object));
    }
    let mut object = Map::new();
    object.insert("operationId".into(), json!(doc.operation_id));
    object.insert("tags".into(), json!([doc.tag]));
    object.insert("summary".into(), json!(doc.summary));
    if let Some(description) = doc.description {
        object.insert("description".into(), json!(description));
    }
    if !parameters.is_empty() {
        object.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = doc.body {
        object.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": body(components) } } }),
        );
    }
    object.insert("responses".into(), Value::Object(responses));
    object.insert("security".into(), if doc.bearer { json!([{ "bearer": [] }]) } else { json!([]) });
    Value::Object(object)
}

/// The `{name}` segments of a route template.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// The document of this build's whole API, serialized once.
pub(crate) fn document_bytes() -> axum::body::Bytes {
    static DOCUMENT: OnceLock<axum::body::Bytes> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let routes = crate::resources::routes();
            let document = document(routes.operations());
            axum::body::Bytes::from(serde_json::to_vec_pretty(&document).unwrap_or_default())
        })
        .clone()
}

/// The OpenAPI 3.1 document of the control API, as JSON (what `GET /openapi.json` serves).
pub fn openapi_document() -> Value {
    serde_json::from_slice(&document_bytes()).unwrap_or(Value::Null)
}

#[cfg(test)]
pub(crate) mod probe {
    //! Reads the field names a `#[derive(Deserialize)]` struct accepts, without an instance: serde
    //! passes them to `deserialize_struct`, which this deserializer records and then refuses.

    use serde::de::{self, Deserializer, Visitor};

    #[derive(Debug)]
    struct Probe<'a>(&'a mut Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = Some(fields);
            Err(de::Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    /// The field names `T` deserializes.
    pub(crate) fn fields<T: for<'de> serde::Deserialize<'de>>() -> Vec<&'static str> {
        let mut found = None;
        let _ = T::deserialize(Probe(&mut found));
        let mut fields = found.expect("a derived struct").to_vec();
        fields.sort_unstable();
        fields
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! Helpers the schema tests use to compare a schema with the serde shape of its type.

    use serde_json::Value;

    use super::{ApiSchema, Components};

    /// The schema of `T` with every `$ref` target registered.
    pub(crate) fn schema_of<T: ApiSchema>() -> (Value, Components) {
        let mut components = Components::default();
        let schema = T::schema(&mut components);
        (schema, components)
    }

    pub(crate) fn property_names(schema: &Value) -> Vec<String> {
        let mut names: Vec<String> =
            schema["properties"].as_object().map(|properties| properties.keys().cloned().collect()).unwrap_or_default();
        names.sort();
        names
    }

    /// A request type: its schema's properties are exactly the fields serde accepts, and it
    /// refuses unknown fields.
    pub(crate) fn check_request<T: ApiSchema + for<'de> serde::Deserialize<'de>>() {
        let (schema, _) = schema_of::<T>();
        let fields: Vec<String> = super::probe::fields::<T>().into_iter().map(str::to_owned).collect();
        assert_eq!(property_names(&schema), fields, "schema {} vs its serde fields", T::NAME);
        assert_eq!(schema["additionalProperties"], Value::Bool(false), "{} must refuse unknown fields", T::NAME);
    }

    /// A fully populated token record, so optional fields serialize too.
    pub(crate) fn example_record() -> tollgate::TokenRecord {
        use tollgate::*;
        let at = Timestamp::from_unix_micros(1_800_000_000_000_000);
        TokenRecord {
            id: TokenId::generate(),
            name: TokenName::parse("ci").unwrap(),
            owner: OwnerId::User(UserId::generate()),
            owner_name: OwnerName::parse("alice").unwrap(),
            owner_role: Some(Role::User),
            project: Some(ProjectId::generate()),
            project_name: Some(ProjectName::parse("search").unwrap()),
            permission: Permission::Standard,
            imposed: Imposed::ALL,
            scopes: vec![Scope::parse("tokens:verify").unwrap()],
            allowed_tools: ToolList::parse(&["search"]).unwrap(),
            ip_allow: IpAllowList::parse(&["10.0.0.0/8"]).unwrap(),
            expires_at: Some(at),
            description: Description::parse("notes").unwrap(),
            display_hint: "tg_AbCd…wxyz".to_owned(),
            key_id: KeyId(1),
            created_at: at,
            updated_at: at,
            last_used_at: Some(at),
            revoked_at: Some(at),
            revoke_reason: Some("leaked".to_owned()),
            rotated_at: Some(at),
            previous_valid_until: Some(at),
            agent: None,
        }
    }

    /// A response value: every key it serializes is documented and every required property is present.
    pub(crate) fn check_response<T: ApiSchema + serde::Serialize>(example: &T) {
        let (schema, _) = schema_of::<T>();
        let value = serde_json::to_value(example).expect("serializable");
        let object = value.as_object().expect("responses are objects");
        let documented = property_names(&schema);
        for key in object.keys() {
            assert!(documented.contains(key), "{}: serialized key {key:?} is not in the schema", T::NAME);
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().expect("names");
            assert!(object.contains_key(required), "{}: required {required:?} not serialized", T::NAME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_read_from_templates() {
        assert_eq!(path_parameters("/v1/tokens/{id}/revoke").collect::<Vec<_>>(), ["id"]);
        assert_eq!(path_parameters("/v1/prices/{provider}/{model}").collect::<Vec<_>>(), ["provider", "model"]);
    }

    #[test]
    fn nullable_widens_the_type() {
        assert_eq!(nullable(json!({ "type": "string" })), json!({ "type": ["string", "null"] }));
        assert_eq!(nullable(json!({ "$ref": "#/x" }))["oneOf"][1], json!({ "type": "null" }));
    }

    #[test]
    fn every_reference_resolves_and_every_operation_is_unique() {
        let document = openapi_document();
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
            assert!(!schemas[name].is_null(), "schema {name} never filled");
        }
        let mut ids: Vec<&str> = Vec::new();
        for (_, item) in document["paths"].as_object().unwrap() {
            for (_, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(!ids.contains(&id), "duplicate operationId {id}");
                ids.push(id);
            }
        }
    }
}
