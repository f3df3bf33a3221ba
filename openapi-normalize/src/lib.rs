//! Turns a FastAPI-style OpenAPI 3.1 document into the OpenAPI 3.0.3 subset that
//! [progenitor](https://docs.rs/progenitor) 0.15 generates a client from, and describes the
//! API surface of a normalised document for snapshot review.
//!
//! progenitor reads 3.0.x only, and several constructs make it panic (`todo!`/`assert!`) rather
//! than fail: more than one success schema or media type per operation, error responses of
//! different kinds, request bodies with several media types or an `encoding`. [`normalize`]
//! rewrites what has a faithful 3.0 form and rejects the rest with a [`NormalizeError`] naming
//! the JSON Pointer (RFC 6901) of the offending part, so a bad document fails the build with a
//! message instead of a panic from inside the generator.
//!
//! Rewrites:
//! - `openapi: 3.1.x` → `3.0.3`; `jsonSchemaDialect`, `webhooks`, `info.summary` and
//!   `info.license.identifier` (3.1 only, irrelevant to a client) are dropped.
//! - Schemas: `type: [T, "null"]` and `anyOf`/`oneOf` with a `{"type": "null"}` member →
//!   `nullable: true` (a lone `$ref` becomes `allOf: [$ref]` so `nullable` is not a sibling
//!   of `$ref`, which 3.0 ignores); `const` → one-value `enum`; `examples` → `example`;
//!   numeric `exclusiveMinimum`/`exclusiveMaximum` → 3.0's boolean form;
//!   `contentEncoding`/`contentMediaType` → `format: byte`/`binary`; a `$ref` with a
//!   `description` beside it (3.1) → `allOf: [$ref]` with that description (3.0 ignores a
//!   `$ref`'s siblings; the generator documents the field with it), its other siblings are
//!   dropped; `$comment` is dropped.
//! - Success responses: FastAPI's `{"application/json": {"schema": {}}}` placeholder beside a
//!   real media type (e.g. `text/event-stream`) is dropped; several different JSON success
//!   schemas (e.g. `201` and a legacy `202`) are merged into one `oneOf`.
//! - Error responses (4xx/5xx): every one becomes a raw body (media type `*/*`, the original
//!   schema kept as documentation). The generated client then returns
//!   `Error::ErrorResponse(ResponseValue<ByteStream>)` with status, headers and the body bytes
//!   for every documented error status, so the SDK keeps status, `WWW-Authenticate` and the
//!   server's detail even when a proxy answers with text; a typed error schema would lose all
//!   three when the body does not match it.
//! - Response `$ref`s to `#/components/responses` are inlined.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[cfg(feature = "diff")]
pub mod diff;
#[cfg(feature = "rust")]
mod evolve;
#[cfg(feature = "rust")]
pub mod rust;
mod surface;
pub use surface::describe_surface;

/// Why a document could not be normalised.
///
/// The message names the JSON Pointer of the offending part of the document; fix the document
/// there, or teach `openapi-normalize` the construct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// A part of the document has the wrong JSON type (e.g. a string where an object belongs).
    #[error("OpenAPI document at `{path}`: expected {expected}; fix the document there")]
    WrongType {
        /// JSON Pointer of the offending value.
        path: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// The document is neither OpenAPI 3.1.x nor 3.0.x.
    #[error(
        "OpenAPI document at `{path}`: version `{found}` is not supported; provide an OpenAPI 3.1.x or 3.0.x document"
    )]
    UnsupportedVersion {
        /// JSON Pointer of the version field.
        path: String,
        /// The version found.
        found: String,
    },
    /// A construct the generator cannot represent.
    #[error(
        "OpenAPI document at `{path}`: {what} is not supported by the client generator; change the document there or extend openapi-normalize"
    )]
    Unsupported {
        /// JSON Pointer of the offending part.
        path: String,
        /// What was found there.
        what: String,
    },
}

impl NormalizeError {
    /// The JSON Pointer (RFC 6901) of the offending part of the document.
    pub fn path(&self) -> &str {
        match self {
            NormalizeError::WrongType { path, .. }
            | NormalizeError::UnsupportedVersion { path, .. }
            | NormalizeError::Unsupported { path, .. } => path,
        }
    }
}

/// Escapes one JSON Pointer reference token (RFC 6901).
fn esc(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn child(path: &str, token: &str) -> String {
    format!("{path}/{}", esc(token))
}

fn unsupported(path: &str, what: impl Into<String>) -> NormalizeError {
    NormalizeError::Unsupported {
        path: path.to_owned(),
        what: what.into(),
    }
}

fn as_object_mut<'a>(
    v: &'a mut Value,
    path: &str,
    expected: &'static str,
) -> Result<&'a mut Map<String, Value>, NormalizeError> {
    v.as_object_mut().ok_or_else(|| NormalizeError::WrongType {
        path: path.to_owned(),
        expected,
    })
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Normalises a FastAPI-style OpenAPI 3.1 (or an already 3.0.x) document into the OpenAPI 3.0.3
/// subset progenitor 0.15 accepts. Pure: no I/O.
///
/// # Errors
///
/// A [`NormalizeError`] naming the JSON Pointer of the first part that cannot be represented.
pub fn normalize(mut doc: Value) -> Result<Value, NormalizeError> {
    let root = as_object_mut(&mut doc, "", "the document to be a JSON object")?;
    match root.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.1.") || v.starts_with("3.0.") => {}
        Some(v) => {
            return Err(NormalizeError::UnsupportedVersion {
                path: "/openapi".into(),
                found: v.to_owned(),
            });
        }
        None => {
            return Err(NormalizeError::WrongType {
                path: "/openapi".into(),
                expected: "a version string such as \"3.1.0\"",
            });
        }
    }
    root.insert("openapi".into(), Value::String("3.0.3".into()));
    root.remove("jsonSchemaDialect");
    root.remove("webhooks");
    if let Some(info) = root.get_mut("info").and_then(Value::as_object_mut) {
        info.remove("summary");
        if let Some(license) = info.get_mut("license").and_then(Value::as_object_mut) {
            license.remove("identifier");
        }
    }

    let component_responses = root
        .get("components")
        .and_then(|c| c.get("responses"))
        .cloned()
        .unwrap_or(Value::Null);

    if let Some(components) = root.get_mut("components") {
        let components = as_object_mut(components, "/components", "an object")?;
        if let Some(schemas) = components.get_mut("schemas") {
            let schemas = as_object_mut(schemas, "/components/schemas", "an object")?;
            for (name, schema) in schemas.iter_mut() {
                normalize_schema(schema, &child("/components/schemas", name))?;
            }
        }
        if let Some(params) = components.get_mut("parameters") {
            let params = as_object_mut(params, "/components/parameters", "an object")?;
            for (name, p) in params.iter_mut() {
                normalize_parameter(p, &child("/components/parameters", name))?;
            }
        }
        if let Some(bodies) = components.get_mut("requestBodies") {
            let bodies = as_object_mut(bodies, "/components/requestBodies", "an object")?;
            for (name, b) in bodies.iter_mut() {
                normalize_request_body(b, &child("/components/requestBodies", name))?;
            }
        }
    }

    let paths = root
        .entry("paths")
        .or_insert_with(|| Value::Object(Map::new()));
    let paths = as_object_mut(paths, "/paths", "an object")?;
    for (route, item) in paths.iter_mut() {
        let item_path = child("/paths", route);
        let item = as_object_mut(item, &item_path, "a path item object")?;
        if item.contains_key("$ref") {
            return Err(unsupported(&item_path, "a `$ref` path item"));
        }
        if let Some(params) = item.get_mut("parameters") {
            normalize_parameter_list(params, &child(&item_path, "parameters"))?;
        }
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                normalize_operation(op, &child(&item_path, method), &component_responses)?;
            }
        }
    }
    Ok(doc)
}

fn normalize_parameter_list(params: &mut Value, path: &str) -> Result<(), NormalizeError> {
    let list = params
        .as_array_mut()
        .ok_or_else(|| NormalizeError::WrongType {
            path: path.to_owned(),
            expected: "an array of parameters",
        })?;
    for (i, p) in list.iter_mut().enumerate() {
        normalize_parameter(p, &child(path, &i.to_string()))?;
    }
    Ok(())
}

fn normalize_parameter(p: &mut Value, path: &str) -> Result<(), NormalizeError> {
    let p = as_object_mut(p, path, "a parameter object")?;
    if p.contains_key("$ref") {
        return Ok(());
    }
    let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
    match location {
        "query" => {
            if let Some(style) = p.get("style").and_then(Value::as_str)
                && style != "form"
            {
                return Err(unsupported(
                    &child(path, "style"),
                    format!("query parameter style `{style}` (only `form`)"),
                ));
            }
        }
        "path" => {
            if p.get("required") != Some(&Value::Bool(true)) {
                return Err(unsupported(
                    path,
                    "a path parameter that is not `required: true`",
                ));
            }
        }
        "header" => {}
        "cookie" => return Err(unsupported(path, "a cookie parameter")),
        other => {
            return Err(unsupported(
                &child(path, "in"),
                format!("parameter location `{other}`"),
            ));
        }
    }
    if p.contains_key("content") {
        return Err(unsupported(
            &child(path, "content"),
            "a parameter described by `content` (use `schema`)",
        ));
    }
    match p.get_mut("schema") {
        Some(schema) => normalize_schema(schema, &child(path, "schema")),
        None => Err(unsupported(path, "a parameter without a `schema`")),
    }
}

fn normalize_request_body(body: &mut Value, path: &str) -> Result<(), NormalizeError> {
    let body = as_object_mut(body, path, "a request body object")?;
    if body.contains_key("$ref") {
        return Ok(());
    }
    let content_path = child(path, "content");
    let Some(content) = body.get_mut("content") else {
        return Ok(());
    };
    let content = as_object_mut(content, &content_path, "an object of media types")?;
    if content.len() > 1 {
        return Err(unsupported(
            &content_path,
            format!(
                "a request body with {} media types (only one)",
                content.len()
            ),
        ));
    }
    for (media, mt) in content.iter_mut() {
        let mt_path = child(&content_path, media);
        let base = media.split(';').next().unwrap_or_default().trim();
        if !matches!(
            base,
            "application/json"
                | "application/x-www-form-urlencoded"
                | "application/octet-stream"
                | "text/plain"
        ) {
            return Err(unsupported(
                &mt_path,
                format!("request body media type `{media}`"),
            ));
        }
        let mt = as_object_mut(mt, &mt_path, "a media type object")?;
        if mt
            .get("encoding")
            .and_then(Value::as_object)
            .is_some_and(|e| !e.is_empty())
        {
            return Err(unsupported(
                &child(&mt_path, "encoding"),
                "a request body `encoding`",
            ));
        }
        match mt.get_mut("schema") {
            Some(schema) => normalize_schema(schema, &child(&mt_path, "schema"))?,
            None => return Err(unsupported(&mt_path, "a request body without a `schema`")),
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Success,
    Error,
}

fn classify(code: &str, path: &str) -> Result<Class, NormalizeError> {
    let up = code.to_ascii_uppercase();
    match up.as_bytes() {
        [b'2', _, _] => Ok(Class::Success),
        b"101" => Ok(Class::Success),
        [b'4' | b'5', _, _] => Ok(Class::Error),
        _ => Err(unsupported(
            path,
            format!(
                "response status `{code}` (use explicit 2xx/4xx/5xx codes or ranges; `default` is ambiguous)"
            ),
        )),
    }
}

fn is_json(media: &str) -> bool {
    let base = media.split(';').next().unwrap_or_default().trim();
    base == "application/json"
}

fn normalize_operation(
    op: &mut Value,
    path: &str,
    component_responses: &Value,
) -> Result<(), NormalizeError> {
    let op = as_object_mut(op, path, "an operation object")?;
    if op
        .get("operationId")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(unsupported(path, "an operation without an `operationId`"));
    }
    if let Some(params) = op.get_mut("parameters") {
        normalize_parameter_list(params, &child(path, "parameters"))?;
    }
    if let Some(body) = op.get_mut("requestBody") {
        normalize_request_body(body, &child(path, "requestBody"))?;
    }
    op.remove("callbacks");

    let responses_path = child(path, "responses");
    let Some(responses) = op.get_mut("responses") else {
        return Err(unsupported(path, "an operation without `responses`"));
    };
    let responses = as_object_mut(responses, &responses_path, "an object of responses")?;

    // Inline `$ref` responses so each can be rewritten per operation.
    for (code, resp) in responses.iter_mut() {
        if let Some(r) = resp.get("$ref").and_then(Value::as_str) {
            let rpath = child(&responses_path, code);
            let target = r
                .strip_prefix("#/components/responses/")
                .and_then(|name| component_responses.get(name))
                .cloned()
                .ok_or_else(|| {
                    unsupported(
                        &rpath,
                        format!("a response `$ref` to `{r}` that does not resolve"),
                    )
                })?;
            *resp = target;
        }
    }

    let mut success_kind: Option<(&'static str, String)> = None;
    let mut success_schemas: Vec<Value> = Vec::new();
    for (code, resp) in responses.iter_mut() {
        let rpath = child(&responses_path, code);
        let class = classify(code, &rpath)?;
        let resp = as_object_mut(resp, &rpath, "a response object")?;
        let content_path = child(&rpath, "content");
        match class {
            Class::Error => {
                // One raw error body for every error status: see the crate docs.
                let mut schema = None;
                if let Some(content) = resp.get_mut("content") {
                    let content =
                        as_object_mut(content, &content_path, "an object of media types")?;
                    for (media, mt) in content.iter_mut() {
                        if schema.is_none()
                            && let Some(s) = mt.get_mut("schema")
                        {
                            normalize_schema(s, &child(&child(&content_path, media), "schema"))?;
                            schema = Some(s.clone());
                        }
                    }
                }
                let mut mt = Map::new();
                if let Some(s) = schema {
                    mt.insert("schema".into(), s);
                }
                let mut content = Map::new();
                content.insert("*/*".into(), Value::Object(mt));
                resp.insert("content".into(), Value::Object(content));
            }
            Class::Success => {
                let kind = if let Some(content) = resp.get_mut("content") {
                    let content =
                        as_object_mut(content, &content_path, "an object of media types")?;
                    if content.len() > 1 {
                        // FastAPI's placeholder beside the real media type.
                        content
                            .retain(|_, mt| mt.get("schema") != Some(&Value::Object(Map::new())));
                    }
                    if content.len() > 1 {
                        return Err(unsupported(
                            &content_path,
                            format!(
                                "a success response with {} media types (only one)",
                                content.len()
                            ),
                        ));
                    }
                    match content.iter_mut().next() {
                        None => ("none", String::new()),
                        Some((media, mt)) => {
                            let mt_path = child(&content_path, media);
                            let mt = as_object_mut(mt, &mt_path, "a media type object")?;
                            if mt
                                .get("encoding")
                                .and_then(Value::as_object)
                                .is_some_and(|e| !e.is_empty())
                            {
                                return Err(unsupported(
                                    &child(&mt_path, "encoding"),
                                    "a response `encoding`",
                                ));
                            }
                            if is_json(media) {
                                let Some(s) = mt.get_mut("schema") else {
                                    return Err(unsupported(
                                        &mt_path,
                                        "a JSON response without a `schema`",
                                    ));
                                };
                                normalize_schema(s, &child(&mt_path, "schema"))?;
                                if !success_schemas.contains(s) {
                                    success_schemas.push(s.clone());
                                }
                                ("json", media.clone())
                            } else {
                                if let Some(s) = mt.get_mut("schema") {
                                    normalize_schema(s, &child(&mt_path, "schema"))?;
                                }
                                ("raw", media.clone())
                            }
                        }
                    }
                } else {
                    ("none", String::new())
                };
                match &success_kind {
                    None => success_kind = Some(kind),
                    Some(prev) if prev.0 == kind.0 => {}
                    Some(prev) => {
                        return Err(unsupported(
                            &rpath,
                            format!(
                                "a success response of kind `{}` beside one of kind `{}` (all success responses must be JSON, all raw, or all empty)",
                                kind.0, prev.0
                            ),
                        ));
                    }
                }
            }
        }
    }
    if success_schemas.len() > 1 {
        let merged = serde_json::json!({ "oneOf": success_schemas });
        for (code, resp) in responses.iter_mut() {
            if classify(code, "")? != Class::Success {
                continue;
            }
            if let Some(content) = resp.get_mut("content").and_then(Value::as_object_mut) {
                for (media, mt) in content.iter_mut() {
                    if is_json(media)
                        && let Some(obj) = mt.as_object_mut()
                    {
                        obj.insert("schema".into(), merged.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

fn is_null_schema(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            (m.get("type") == Some(&Value::String("null".into()))
                && m.keys()
                    .all(|k| matches!(k.as_str(), "type" | "title" | "description")))
                || (m.get("enum") == Some(&Value::Array(vec![Value::Null])) && m.len() == 1)
        }
        _ => false,
    }
}

const UNSUPPORTED_KEYWORDS: [&str; 11] = [
    "$schema",
    "$id",
    "$defs",
    "$dynamicRef",
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "if",
    "dependentSchemas",
    "patternProperties",
    "propertyNames",
];

/// Normalises one schema (and everything below it) in place.
fn normalize_schema(schema: &mut Value, path: &str) -> Result<(), NormalizeError> {
    let obj = match schema {
        Value::Bool(true) => {
            *schema = Value::Object(Map::new());
            return Ok(());
        }
        Value::Object(obj) => obj,
        _ => {
            return Err(NormalizeError::WrongType {
                path: path.to_owned(),
                expected: "a schema object",
            });
        }
    };
    if obj.contains_key("$ref") {
        // 3.0 ignores a `$ref`'s siblings, but a field's `description` there (3.1) is its
        // documentation: keep it beside `allOf: [$ref]`, where the generator reads it.
        let description = obj.remove("description").filter(Value::is_string);
        obj.retain(|k, _| k == "$ref");
        if let Some(description) = description {
            let reference = Value::Object(std::mem::take(obj));
            obj.insert("allOf".into(), Value::Array(vec![reference]));
            obj.insert("description".into(), description);
        }
        return Ok(());
    }
    for kw in UNSUPPORTED_KEYWORDS {
        if obj.contains_key(kw) {
            return Err(unsupported(
                &child(path, kw),
                format!("the JSON Schema keyword `{kw}`"),
            ));
        }
    }
    obj.remove("$comment");

    // type: [T, "null"]
    if let Some(Value::Array(types)) = obj.get("type").cloned() {
        let had_null = types.iter().any(|t| t == "null");
        let rest: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        match rest.as_slice() {
            [] => {
                obj.remove("type");
                obj.insert("enum".into(), Value::Array(vec![Value::Null]));
            }
            [one] => {
                obj.insert("type".into(), one.clone());
                if had_null {
                    obj.insert("nullable".into(), Value::Bool(true));
                }
            }
            _ => {
                return Err(unsupported(
                    &child(path, "type"),
                    "a type array with several non-null types (use `anyOf`)",
                ));
            }
        }
    } else if obj.get("type") == Some(&Value::String("null".into())) {
        obj.remove("type");
        obj.insert("enum".into(), Value::Array(vec![Value::Null]));
    }

    if let Some(c) = obj.remove("const") {
        obj.insert("enum".into(), Value::Array(vec![c]));
    }
    if let Some(examples) = obj.remove("examples")
        && let Some(first) = examples.as_array().and_then(|a| a.first())
        && !obj.contains_key("example")
    {
        obj.insert("example".into(), first.clone());
    }
    for (kw, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(n) = obj.get(kw).filter(|v| v.is_number()).cloned() {
            obj.insert(bound.into(), n);
            obj.insert(kw.into(), Value::Bool(true));
        }
    }
    if let Some(enc) = obj.remove("contentEncoding")
        && !obj.contains_key("format")
    {
        let f = if enc == "base64" { "byte" } else { "binary" };
        obj.insert("format".into(), Value::String(f.into()));
    }
    if obj.remove("contentMediaType").is_some() && !obj.contains_key("format") {
        obj.insert("format".into(), Value::String("binary".into()));
    }

    // anyOf / oneOf with a null member → nullable.
    for kw in ["anyOf", "oneOf"] {
        let Some(Value::Array(members)) = obj.get(kw) else {
            continue;
        };
        if !members.iter().any(is_null_schema) {
            continue;
        }
        let rest: Vec<(usize, Value)> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| !is_null_schema(m))
            .map(|(i, m)| (i, m.clone()))
            .collect();
        obj.remove(kw);
        obj.insert("nullable".into(), Value::Bool(true));
        match rest.len() {
            0 => {
                obj.insert("enum".into(), Value::Array(vec![Value::Null]));
            }
            1 => {
                let (index, mut only) = rest.into_iter().next().unwrap_or_default();
                // Normalise the member where it stands, so errors name its real path.
                normalize_schema(&mut only, &child(&child(path, kw), &index.to_string()))?;
                match only {
                    Value::Object(m) if m.contains_key("$ref") => {
                        obj.insert("allOf".into(), Value::Array(vec![Value::Object(m)]));
                    }
                    Value::Object(m) => {
                        for (k, v) in m {
                            // The outer (field-level) title and description win.
                            obj.entry(k).or_insert(v);
                        }
                    }
                    _ => {
                        return Err(NormalizeError::WrongType {
                            path: child(path, kw),
                            expected: "schema objects",
                        });
                    }
                }
            }
            _ => {
                obj.insert(
                    kw.into(),
                    Value::Array(rest.into_iter().map(|(_, m)| m).collect()),
                );
            }
        }
    }
    if obj.contains_key("nullable")
        && obj
            .get("enum")
            .is_some_and(|e| e == &Value::Array(vec![Value::Null]))
    {
        obj.remove("nullable");
    }

    // Recurse (after the rewrites above, which may have merged members into this object).
    let snapshot: BTreeMap<String, ()> = obj.keys().map(|k| (k.clone(), ())).collect();
    for key in snapshot.keys() {
        let here = child(path, key);
        match key.as_str() {
            "properties" => {
                let props = obj
                    .get_mut(key)
                    .map(|p| as_object_mut(p, &here, "an object of properties"))
                    .transpose()?;
                for (name, s) in props.into_iter().flat_map(|p| p.iter_mut()) {
                    normalize_schema(s, &child(&here, name))?;
                }
            }
            "items" => {
                if let Some(v) = obj.get_mut(key) {
                    if v.is_array() {
                        return Err(unsupported(&here, "tuple `items` (an array)"));
                    }
                    normalize_schema(v, &here)?;
                }
            }
            "additionalProperties" | "not" => {
                if let Some(v) = obj.get_mut(key)
                    && !v.is_boolean()
                {
                    normalize_schema(v, &here)?;
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                if let Some(Value::Array(members)) = obj.get_mut(key) {
                    for (i, m) in members.iter_mut().enumerate() {
                        normalize_schema(m, &child(&here, &i.to_string()))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sets `format: <marker>` on named properties of a normalised document, so the generator can
/// map them to a Rust type (see [`rust::RustTypes`](crate) when the `rust` feature is on).
///
/// Each mark is `("Schema.property", "marker")`: `Transaction.amount` is
/// `/components/schemas/Transaction/properties/amount`. A nullable property keeps its
/// `nullable: true` (it becomes `Option<T>` of the marked type).
///
/// # Errors
///
/// [`NormalizeError::Unsupported`] naming the JSON Pointer of a mark whose schema or property
/// the document does not have (so a renamed or removed field fails the build instead of
/// silently losing its type), or of a property that is a `$ref`/composition rather than a
/// plain scalar schema.
pub fn mark_formats(doc: &mut Value, marks: &[(&str, &str)]) -> Result<(), NormalizeError> {
    for (target, marker) in marks {
        let (schema, property) = target.split_once('.').ok_or_else(|| {
            unsupported(
                "/components/schemas",
                format!("the mark `{target}` (write it as `Schema.property`)"),
            )
        })?;
        let path = child(
            &child(&child("/components/schemas", schema), "properties"),
            property,
        );
        let prop = doc
            .pointer_mut(&path)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                unsupported(
                    &path,
                    format!("a missing property (marked `{marker}` by the generator's type table)"),
                )
            })?;
        if ["$ref", "allOf", "anyOf", "oneOf"]
            .iter()
            .any(|k| prop.contains_key(*k))
        {
            return Err(unsupported(
                &path,
                format!("a `{marker}` mark on a reference or composition (mark a plain schema)"),
            ));
        }
        prop.insert("format".into(), Value::String((*marker).to_owned()));
    }
    Ok(())
}

/// Appends one indented line: used by the surface describer.
pub(crate) fn push_line(out: &mut String, indent: usize, line: &str) {
    let _ = writeln!(out, "{:indent$}{line}", "");
}

#[cfg(test)]
mod tests;
