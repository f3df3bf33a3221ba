//! A line-oriented description of the API surface a normalised document generates: one block
//! per operation (name, method, path, parameters, body, responses) and one per named type
//! (fields with types and optionality). Snapshot it to review an API change as a diff.

use crate::{NormalizeError, child, push_line};
use serde_json::Value;

/// Describes the API surface of a normalised (OpenAPI 3.0) document: each operation's method
/// name (its `operationId`), HTTP method, path, parameters, request body and response types,
/// then each named schema's fields. Lines are sorted so the text changes only where the API
/// does.
///
/// # Errors
///
/// [`NormalizeError::WrongType`] naming the JSON Pointer of a malformed part.
pub fn describe_surface(doc: &Value) -> Result<String, NormalizeError> {
    let mut ops = Vec::new();
    let paths =
        doc.get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| NormalizeError::WrongType {
                path: "/paths".into(),
                expected: "an object",
            })?;
    for (route, item) in paths {
        let item_path = child("/paths", route);
        let Some(item) = item.as_object() else {
            return Err(NormalizeError::WrongType {
                path: item_path,
                expected: "a path item object",
            });
        };
        let shared_params = item.get("parameters").and_then(Value::as_array);
        for method in crate::METHODS {
            let Some(op) = item.get(method) else { continue };
            let op_path = child(&item_path, method);
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .ok_or_else(|| NormalizeError::WrongType {
                    path: child(&op_path, "operationId"),
                    expected: "a string",
                })?;
            let mut block = String::new();
            push_line(
                &mut block,
                0,
                &format!("{id}: {} {route}", method.to_ascii_uppercase()),
            );
            let security = op.get("security").or_else(|| doc.get("security"));
            push_line(
                &mut block,
                2,
                &format!("auth: {}", describe_security(security)),
            );
            let mut params: Vec<String> = shared_params
                .into_iter()
                .flatten()
                .chain(
                    op.get("parameters")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                )
                .map(|p| describe_param(doc, p))
                .collect();
            params.sort();
            for p in params {
                push_line(&mut block, 2, &p);
            }
            if let Some(body) = op.get("requestBody") {
                let body = resolve(doc, body);
                let required = body.get("required") == Some(&Value::Bool(true));
                for (media, mt) in body
                    .get("content")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let ty = mt.get("schema").map_or("none".into(), describe_type);
                    let req = if required { "" } else { ", optional" };
                    push_line(&mut block, 2, &format!("body {media}: {ty}{req}"));
                }
            }
            let mut errors = Vec::new();
            for (code, resp) in op
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if code.starts_with('4') || code.starts_with('5') {
                    errors.push(code.clone());
                    continue;
                }
                let content = resp.get("content").and_then(Value::as_object);
                match content.and_then(|c| c.iter().next()) {
                    None => push_line(&mut block, 2, &format!("response {code}: empty")),
                    Some((media, mt)) if media.starts_with("application/json") => {
                        let ty = mt.get("schema").map_or("any".into(), describe_type);
                        push_line(&mut block, 2, &format!("response {code} {media}: {ty}"));
                    }
                    Some((media, _)) => {
                        push_line(
                            &mut block,
                            2,
                            &format!("response {code} {media}: byte stream"),
                        );
                    }
                }
            }
            if !errors.is_empty() {
                push_line(
                    &mut block,
                    2,
                    &format!("errors (raw body): {}", errors.join(" ")),
                );
            }
            ops.push((id.to_owned(), block));
        }
    }
    ops.sort();

    let mut out = String::from("# operations\n");
    for (_, block) in ops {
        out.push_str(&block);
    }
    out.push_str("\n# types\n");
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        let mut names: Vec<&String> = schemas.keys().collect();
        names.sort();
        for name in names {
            let schema = &schemas[name];
            let props = schema.get("properties").and_then(Value::as_object);
            match props {
                Some(props) => {
                    push_line(&mut out, 0, name);
                    let required: Vec<&str> = schema
                        .get("required")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let mut fields: Vec<String> = props
                        .iter()
                        .map(|(field, s)| {
                            let opt = if required.contains(&field.as_str()) {
                                ""
                            } else {
                                ", optional"
                            };
                            let default = s
                                .get("default")
                                .map(|d| format!(", default {d}"))
                                .unwrap_or_default();
                            format!("{name}.{field}: {}{opt}{default}", describe_type(s))
                        })
                        .collect();
                    fields.sort();
                    for f in fields {
                        push_line(&mut out, 2, &f);
                    }
                }
                None => push_line(&mut out, 0, &format!("{name} = {}", describe_type(schema))),
            }
        }
    }
    Ok(out)
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(v),
        None => v,
    }
}

/// `none`, or each alternative requirement as `Scheme[scope scope]`, joined by ` | `.
fn describe_security(security: Option<&Value>) -> String {
    let alternatives: Vec<String> = security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|req| !req.is_empty())
        .map(|req| {
            let mut parts: Vec<String> = req
                .iter()
                .map(|(scheme, scopes)| {
                    let scopes: Vec<&str> = scopes
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    format!("{scheme}[{}]", scopes.join(" "))
                })
                .collect();
            parts.sort();
            parts.join(" + ")
        })
        .collect();
    if alternatives.is_empty() {
        "none".into()
    } else {
        alternatives.join(" | ")
    }
}

fn describe_param(doc: &Value, p: &Value) -> String {
    let p = resolve(doc, p);
    let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
    let location = p.get("in").and_then(Value::as_str).unwrap_or("?");
    let mut line = format!(
        "param {location} {name}: {}",
        p.get("schema").map_or("any".into(), describe_type)
    );
    if p.get("required") != Some(&Value::Bool(true)) {
        line.push_str(", optional");
    }
    if let Some(s) = p.get("schema") {
        for (kw, label) in [
            ("minimum", "min"),
            ("maximum", "max"),
            ("default", "default"),
        ] {
            if let Some(v) = s.get(kw) {
                line.push_str(&format!(", {label} {v}"));
            }
        }
    }
    line
}

/// A compact type expression for a schema: `Name`, `string`, `array<T>`, `T?` (nullable), ….
fn describe_type(s: &Value) -> String {
    let base = if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        r.rsplit('/').next().unwrap_or(r).to_owned()
    } else if let Some(members) = s
        .get("allOf")
        .and_then(Value::as_array)
        .filter(|m| m.len() == 1)
    {
        describe_type(&members[0])
    } else if let Some((kw, members)) = ["oneOf", "anyOf", "allOf"]
        .iter()
        .find_map(|kw| s.get(*kw).and_then(Value::as_array).map(|m| (*kw, m)))
    {
        let parts: Vec<String> = members.iter().map(describe_type).collect();
        format!("{kw}<{}>", parts.join(" | "))
    } else if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let parts: Vec<String> = values.iter().map(Value::to_string).collect();
        format!("enum[{}]", parts.join(", "))
    } else {
        match s.get("type").and_then(Value::as_str) {
            Some("array") => format!(
                "array<{}>",
                s.get("items").map_or("any".into(), describe_type)
            ),
            Some("object") => match (
                s.get("properties").and_then(Value::as_object),
                s.get("additionalProperties"),
            ) {
                (Some(props), _) if !props.is_empty() => {
                    let mut fields: Vec<String> = props
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", describe_type(v)))
                        .collect();
                    fields.sort();
                    format!("object{{{}}}", fields.join(", "))
                }
                (_, Some(Value::Object(ap))) if !ap.is_empty() => {
                    format!("map<{}>", describe_type(&Value::Object(ap.clone())))
                }
                _ => "object".into(),
            },
            Some(t) => match s.get("format").and_then(Value::as_str) {
                Some(f) => format!("{t}({f})"),
                None => t.to_owned(),
            },
            None => "any".into(),
        }
    };
    if s.get("nullable") == Some(&Value::Bool(true)) {
        format!("{base}?")
    } else {
        base
    }
}
