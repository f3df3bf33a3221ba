//! Classifies the differences between two versions of an API document by what they mean for
//! the Rust crate generated from it (feature `diff`): `additive` (a minor release: code
//! written against the old crate keeps compiling and working) or `breaking` (a major
//! release). Both documents are normalised first, then compared as [`openapiv3`] values, so
//! formatting, key order and the 3.1 spellings of one 3.0 construct never count.
//!
//! The rules (each has a test in `tests.rs`):
//!
//! | change | class |
//! | --- | --- |
//! | operation added; type added | additive |
//! | operation removed, or its method or path changed; type removed | breaking |
//! | optional parameter added; required parameter made optional | additive |
//! | required parameter added; parameter removed; optional parameter made required | breaking |
//! | field added to a response type (required or not) | additive |
//! | optional field added to a request type | additive |
//! | required field added to a request type | breaking |
//! | field removed | breaking |
//! | request field made required or optional (its argument of `builder(…)` changes) | breaking |
//! | response field made required/optional, nullable or not, given or losing a default, where that changes its Rust type (`T` ↔ `Option<T>`) | breaking |
//! | enum value added (enums are open) | additive |
//! | enum value removed | breaking |
//! | type changed: another type, format, a string narrowed to an enum or widened from one, an integer's Rust type (`i64`, `u64`, `NonZeroU64`) | breaking |
//! | request value constraint tightened (`minimum` up, `maximum`/`maxLength` down, a new `pattern`) | breaking |
//! | constraint relaxed, or any constraint of a response value | additive |
//! | alternative (`oneOf`/`anyOf` member) added / removed | additive / breaking |
//! | success response changes kind (JSON, byte stream, empty) or type | breaking |
//! | error status added or removed (error bodies are raw) | additive |
//! | scope added to an operation's security / removed | breaking / additive |
//! | description, title, summary or example changed, and nothing else | additive (documentation) |
//! | anything else that differs | breaking (unclassified: review by hand) |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use openapiv3::{
    AdditionalProperties, OpenAPI, Operation, Parameter, ParameterSchemaOrContent, ReferenceOr,
    Schema, SchemaKind, StatusCode, Type,
};
use serde_json::Value;

/// What a change means for the generated crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Code written against the old crate keeps compiling and working: a minor release.
    Additive,
    /// Code written against the old crate may stop compiling or working: a major release.
    Breaking,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Additive => "additive",
            Class::Breaking => "breaking",
        })
    }
}

/// One classified difference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// `breaking` or `additive`.
    pub class: Class,
    /// What it concerns: `operation list_agents (GET /api/agents)`, `schema Transaction field
    /// amount (used by list_transactions)`, `document`.
    pub subject: String,
    /// What changed.
    pub what: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8}  {}: {}",
            self.class.to_string(),
            self.subject,
            self.what
        )
    }
}

/// Why two documents could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{which} document: {message}")]
pub struct DiffError {
    /// `old` or `new`.
    pub which: &'static str,
    /// What failed (the normaliser's message names the JSON Pointer).
    pub message: String,
}

/// Classifies every difference between `old` and `new` (raw documents, 3.1 or 3.0). An empty
/// list means both describe the same API in the same words.
///
/// # Errors
///
/// A [`DiffError`] when either document cannot be normalised or read as OpenAPI 3.0.
pub fn classify(old: Value, new: Value) -> Result<Vec<Change>, DiffError> {
    let read = |which: &'static str, raw: Value| -> Result<(Value, OpenAPI), DiffError> {
        let doc = crate::normalize(raw).map_err(|e| DiffError {
            which,
            message: e.to_string(),
        })?;
        let api = serde_json::from_value(doc.clone()).map_err(|e| DiffError {
            which,
            message: format!("not an OpenAPI 3.0 document after normalising: {e}"),
        })?;
        Ok((doc, api))
    };
    let (old_doc, old_api) = read("old", old)?;
    let (new_doc, new_api) = read("new", new)?;
    if old_doc == new_doc {
        return Ok(Vec::new());
    }
    let mut cx = Cx {
        old: &old_api,
        new: &new_api,
        out: Vec::new(),
        requests: BTreeSet::new(),
        users: BTreeMap::new(),
    };
    for api in [&old_api, &new_api] {
        cx.requests.extend(request_schemas(api));
        for (name, ops) in schema_users(api) {
            cx.users.entry(name).or_default().extend(ops);
        }
    }
    cx.operations();
    cx.schemas();
    let mut out = cx.out;
    if out.is_empty() {
        let (mut a, mut b) = (old_doc.clone(), new_doc.clone());
        strip_docs(&mut a);
        strip_docs(&mut b);
        let mut pointers = Vec::new();
        if a == b {
            differing(&old_doc, &new_doc, String::new(), &mut pointers);
            for p in pointers {
                out.push(Change {
                    class: Class::Additive,
                    subject: "documentation".into(),
                    what: format!("text changed at {p}"),
                });
            }
        } else {
            differing(&a, &b, String::new(), &mut pointers);
            for p in pointers {
                out.push(Change {
                    class: Class::Breaking,
                    subject: "document".into(),
                    what: format!("unclassified change at {p}: review it by hand"),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The release a list of changes calls for: `major` when one is breaking, `minor` when some
/// are additive, `none` when there are none.
pub fn release(changes: &[Change]) -> &'static str {
    match changes.iter().map(|c| c.class).max() {
        Some(Class::Breaking) => "major",
        Some(Class::Additive) => "minor",
        None => "none",
    }
}

const DOC_KEYS: [&str; 6] = [
    "description",
    "title",
    "summary",
    "example",
    "examples",
    "externalDocs",
];

fn strip_docs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // `properties` maps names to schemas: a property named `title` is not text.
            let is_props = m.contains_key("type") || m.contains_key("properties");
            for k in DOC_KEYS {
                if let Some(x) = m.get(k)
                    && (x.is_string() || k == "example" || k == "examples" || k == "externalDocs")
                    && !(is_props && k == "properties")
                {
                    m.remove(k);
                }
            }
            for x in m.values_mut() {
                strip_docs(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_docs),
        _ => {}
    }
}

/// JSON Pointers (RFC 6901) where `a` and `b` differ, at most 20.
fn differing(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    if out.len() >= 20 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let here = crate::child(&at, k);
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => differing(p, q, here, out),
                    _ => out.push(here),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differing(p, q, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(if at.is_empty() { "/".into() } else { at }),
    }
}

fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// Every operation: (operationId, method, path, operation).
fn operations(api: &OpenAPI) -> BTreeMap<String, (String, String, &Operation)> {
    let mut out = BTreeMap::new();
    for (path, item) in api.paths.iter() {
        let Some(item) = item.as_item() else { continue };
        for (method, op) in item.iter() {
            let id = op
                .operation_id
                .clone()
                .unwrap_or_else(|| format!("{} {path}", method.to_ascii_uppercase()));
            out.insert(id, (method.to_ascii_uppercase(), path.clone(), op));
        }
    }
    out
}

fn schema_refs(s: &ReferenceOr<Schema>, out: &mut Vec<String>) {
    match s {
        ReferenceOr::Reference { reference } => out.push(ref_name(reference).to_owned()),
        ReferenceOr::Item(s) => schema_refs_in(s, out),
    }
}

fn schema_refs_boxed(s: &ReferenceOr<Box<Schema>>, out: &mut Vec<String>) {
    match s {
        ReferenceOr::Reference { reference } => out.push(ref_name(reference).to_owned()),
        ReferenceOr::Item(s) => schema_refs_in(s, out),
    }
}

fn schema_refs_in(s: &Schema, out: &mut Vec<String>) {
    match &s.schema_kind {
        SchemaKind::Type(Type::Object(o)) => {
            o.properties
                .values()
                .for_each(|p| schema_refs_boxed(p, out));
            if let Some(AdditionalProperties::Schema(a)) = &o.additional_properties {
                schema_refs(a, out);
            }
        }
        SchemaKind::Type(Type::Array(a)) => a.items.iter().for_each(|i| schema_refs_boxed(i, out)),
        SchemaKind::OneOf { one_of: m }
        | SchemaKind::AllOf { all_of: m }
        | SchemaKind::AnyOf { any_of: m } => m.iter().for_each(|x| schema_refs(x, out)),
        SchemaKind::Not { not } => schema_refs(not, out),
        SchemaKind::Any(a) => {
            a.properties
                .values()
                .for_each(|p| schema_refs_boxed(p, out));
            a.items.iter().for_each(|i| schema_refs_boxed(i, out));
            for m in a.one_of.iter().chain(&a.all_of).chain(&a.any_of) {
                schema_refs(m, out);
            }
        }
        SchemaKind::Type(_) => {}
    }
}

/// `name` and every component schema reachable from it.
fn closure(api: &OpenAPI, roots: Vec<String>) -> BTreeSet<String> {
    let schemas = api.components.as_ref().map(|c| &c.schemas);
    let mut seen = BTreeSet::new();
    let mut todo = roots;
    while let Some(n) = todo.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        if let Some(s) = schemas.and_then(|s| s.get(&n)) {
            schema_refs(s, &mut todo);
        }
    }
    seen
}

fn body_schema(api: &OpenAPI, op: &Operation) -> Option<(bool, ReferenceOr<Schema>)> {
    let body = match op.request_body.as_ref()? {
        ReferenceOr::Item(b) => b.clone(),
        ReferenceOr::Reference { reference } => api
            .components
            .as_ref()?
            .request_bodies
            .get(ref_name(reference))?
            .as_item()?
            .clone(),
    };
    let schema = body.content.values().next()?.schema.clone()?;
    Some((body.required, schema))
}

fn param_schemas<'a>(api: &'a OpenAPI, op: &'a Operation) -> Vec<Parameter> {
    op.parameters
        .iter()
        .filter_map(|p| match p {
            ReferenceOr::Item(p) => Some(p.clone()),
            ReferenceOr::Reference { reference } => api
                .components
                .as_ref()?
                .parameters
                .get(ref_name(reference))?
                .as_item()
                .cloned(),
        })
        .collect()
}

/// The component schemas a request (body or parameter) is made of.
fn request_schemas(api: &OpenAPI) -> BTreeSet<String> {
    let mut roots = Vec::new();
    for (_, (_, _, op)) in operations(api) {
        if let Some((_, s)) = body_schema(api, op) {
            schema_refs(&s, &mut roots);
        }
        for p in param_schemas(api, op) {
            if let ParameterSchemaOrContent::Schema(s) = &p.parameter_data_ref().format {
                schema_refs(s, &mut roots);
            }
        }
    }
    closure(api, roots)
}

/// Which operations use each component schema (directly or through another schema).
fn schema_users(api: &OpenAPI) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, (_, _, op)) in operations(api) {
        let mut roots = Vec::new();
        if let Some((_, s)) = body_schema(api, op) {
            schema_refs(&s, &mut roots);
        }
        for p in param_schemas(api, op) {
            if let ParameterSchemaOrContent::Schema(s) = &p.parameter_data_ref().format {
                schema_refs(s, &mut roots);
            }
        }
        for r in op.responses.responses.values() {
            if let Some(r) = r.as_item() {
                for mt in r.content.values() {
                    if let Some(s) = &mt.schema {
                        schema_refs(s, &mut roots);
                    }
                }
            }
        }
        for name in closure(api, roots) {
            out.entry(name).or_default().insert(id.clone());
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

struct Cx<'a> {
    old: &'a OpenAPI,
    new: &'a OpenAPI,
    out: Vec<Change>,
    requests: BTreeSet<String>,
    users: BTreeMap<String, BTreeSet<String>>,
}

/// A schema (or reference) resolved enough to compare: `$ref`s stay names.
enum Node<'a> {
    Ref(&'a str),
    Schema(&'a Schema),
}

fn node(s: &ReferenceOr<Schema>) -> Node<'_> {
    match s {
        ReferenceOr::Reference { reference } => Node::Ref(ref_name(reference)),
        ReferenceOr::Item(s) => Node::Schema(s),
    }
}

fn node_boxed(s: &ReferenceOr<Box<Schema>>) -> Node<'_> {
    match s {
        ReferenceOr::Reference { reference } => Node::Ref(ref_name(reference)),
        ReferenceOr::Item(s) => Node::Schema(s),
    }
}

/// A one-member `allOf` (how a nullable `$ref` is written) is its member.
fn unwrap_all_of<'a>(n: Node<'a>) -> (Node<'a>, bool) {
    match n {
        Node::Schema(s) => match &s.schema_kind {
            SchemaKind::AllOf { all_of } if all_of.len() == 1 => {
                (node(&all_of[0]), s.schema_data.nullable)
            }
            _ => (Node::Schema(s), s.schema_data.nullable),
        },
        r => (r, false),
    }
}

/// A short type name: `string`, `integer(int32)`, `Transaction`, `array`, `object`, ….
fn kind_name(n: &Node<'_>) -> String {
    match n {
        Node::Ref(r) => (*r).to_owned(),
        Node::Schema(s) => match &s.schema_kind {
            SchemaKind::Type(Type::String(t)) => {
                let f = format!("{:?}", t.format);
                if t.enumeration.is_empty() {
                    format!("string{}", fmt_format(&f))
                } else {
                    "string enum".into()
                }
            }
            SchemaKind::Type(Type::Integer(t)) => {
                format!("integer{}", fmt_format(&format!("{:?}", t.format)))
            }
            SchemaKind::Type(Type::Number(t)) => {
                format!("number{}", fmt_format(&format!("{:?}", t.format)))
            }
            SchemaKind::Type(Type::Boolean(_)) => "boolean".into(),
            SchemaKind::Type(Type::Array(_)) => "array".into(),
            SchemaKind::Type(Type::Object(o)) if o.properties.is_empty() => "map".into(),
            SchemaKind::Type(Type::Object(_)) => "object".into(),
            SchemaKind::OneOf { .. } => "oneOf".into(),
            SchemaKind::AnyOf { .. } => "anyOf".into(),
            SchemaKind::AllOf { .. } => "allOf".into(),
            SchemaKind::Not { .. } => "not".into(),
            SchemaKind::Any(_) => "any".into(),
        },
    }
}

/// `VariantOrUnknownOrEmpty` debug text → `(format)` or nothing.
fn fmt_format(debug: &str) -> String {
    if debug == "Empty" {
        return String::new();
    }
    let inner = debug
        .trim_start_matches("Item(")
        .trim_start_matches("Unknown(")
        .trim_end_matches(')')
        .trim_matches('"')
        .to_ascii_lowercase();
    format!("({inner})")
}

/// The Rust integer typify picks, by bounds: `NonZeroU64` for `minimum: 1`, unsigned for
/// `minimum >= 0`, else signed.
fn int_class(min: Option<i64>) -> &'static str {
    match min {
        Some(1) => "non-zero",
        Some(m) if m >= 0 => "unsigned",
        _ => "signed",
    }
}

fn member_names(members: &[ReferenceOr<Schema>]) -> BTreeSet<String> {
    members.iter().map(|m| kind_name(&node(m))).collect()
}

impl Cx<'_> {
    fn push(&mut self, class: Class, subject: &str, what: impl Into<String>) {
        self.out.push(Change {
            class,
            subject: subject.to_owned(),
            what: what.into(),
        });
    }

    fn used_by(&self, schema: &str) -> String {
        match self.users.get(schema) {
            Some(ops) if !ops.is_empty() => {
                format!(
                    " (used by {})",
                    ops.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            }
            _ => String::new(),
        }
    }

    fn operations(&mut self) {
        let old = operations(self.old);
        let new = operations(self.new);
        for (id, (m, p, _)) in &old {
            if !new.contains_key(id) {
                self.push(
                    Class::Breaking,
                    &format!("operation {id} ({m} {p})"),
                    "removed",
                );
            }
        }
        for (id, (m, p, op)) in &new {
            let subject = format!("operation {id} ({m} {p})");
            let Some((om, opath, oop)) = old.get(id) else {
                self.push(Class::Additive, &subject, "added");
                continue;
            };
            if (om, opath) != (m, p) {
                self.push(
                    Class::Breaking,
                    &subject,
                    format!("moved from {om} {opath}"),
                );
            }
            self.parameters(&subject, oop, op);
            self.body(&subject, oop, op);
            self.responses(&subject, oop, op);
            self.security(&subject, oop, op);
        }
    }

    fn parameters(&mut self, subject: &str, old: &Operation, new: &Operation) {
        let key = |p: &Parameter| {
            let d = p.parameter_data_ref();
            let loc = match p {
                Parameter::Query { .. } => "query",
                Parameter::Header { .. } => "header",
                Parameter::Path { .. } => "path",
                Parameter::Cookie { .. } => "cookie",
            };
            (format!("{loc} parameter {}", d.name), p.clone())
        };
        let olds: BTreeMap<String, Parameter> =
            param_schemas(self.old, old).iter().map(key).collect();
        let news: BTreeMap<String, Parameter> =
            param_schemas(self.new, new).iter().map(key).collect();
        for name in olds.keys().filter(|k| !news.contains_key(*k)) {
            self.push(Class::Breaking, subject, format!("{name} removed"));
        }
        for (name, p) in &news {
            let d = p.parameter_data_ref();
            let Some(o) = olds.get(name) else {
                if d.required {
                    self.push(Class::Breaking, subject, format!("new required {name}"));
                } else {
                    self.push(Class::Additive, subject, format!("new optional {name}"));
                }
                continue;
            };
            let od = o.parameter_data_ref();
            match (od.required, d.required) {
                (false, true) => {
                    self.push(Class::Breaking, subject, format!("{name} now required"))
                }
                (true, false) => {
                    self.push(Class::Additive, subject, format!("{name} now optional"))
                }
                _ => {}
            }
            if let (ParameterSchemaOrContent::Schema(a), ParameterSchemaOrContent::Schema(b)) =
                (&od.format, &d.format)
            {
                self.compare(
                    Side::Request,
                    &format!("{subject}, {name}"),
                    node(a),
                    node(b),
                );
            }
        }
    }

    fn body(&mut self, subject: &str, old: &Operation, new: &Operation) {
        match (body_schema(self.old, old), body_schema(self.new, new)) {
            (None, None) => {}
            (Some(_), None) => self.push(Class::Breaking, subject, "request body removed"),
            (None, Some((req, _))) => self.push(
                if req {
                    Class::Breaking
                } else {
                    Class::Additive
                },
                subject,
                if req {
                    "new required request body"
                } else {
                    "new optional request body"
                },
            ),
            (Some((oreq, a)), Some((nreq, b))) => {
                if oreq != nreq {
                    let class = if nreq {
                        Class::Breaking
                    } else {
                        Class::Additive
                    };
                    self.push(
                        class,
                        subject,
                        format!(
                            "request body now {}",
                            if nreq { "required" } else { "optional" }
                        ),
                    );
                }
                self.compare(
                    Side::Request,
                    &format!("{subject}, request body"),
                    node(&a),
                    node(&b),
                );
            }
        }
    }

    fn responses(&mut self, subject: &str, old: &Operation, new: &Operation) {
        let split = |op: &Operation| {
            let mut success = None;
            let mut errors = BTreeSet::new();
            for (code, r) in &op.responses.responses {
                let n = match code {
                    StatusCode::Code(n) => *n,
                    StatusCode::Range(n) => *n * 100,
                };
                if n >= 400 {
                    errors.insert(code.to_string());
                } else if success.is_none()
                    && let Some(r) = r.as_item()
                {
                    success = Some(match r.content.iter().next() {
                        None => ("empty".to_owned(), None),
                        Some((media, mt)) if media.starts_with("application/json") => {
                            ("JSON".to_owned(), mt.schema.clone())
                        }
                        Some((media, _)) => (format!("byte stream ({media})"), None),
                    });
                }
            }
            (success, errors)
        };
        let (os, oe) = split(old);
        let (ns, ne) = split(new);
        for code in oe.difference(&ne) {
            self.push(
                Class::Additive,
                subject,
                format!("error status {code} no longer documented"),
            );
        }
        for code in ne.difference(&oe) {
            self.push(
                Class::Additive,
                subject,
                format!("error status {code} documented"),
            );
        }
        match (os, ns) {
            (Some((ok, oschema)), Some((nk, nschema))) => {
                if ok != nk {
                    self.push(
                        Class::Breaking,
                        subject,
                        format!("response changed from {ok} to {nk}"),
                    );
                } else if let (Some(a), Some(b)) = (oschema, nschema) {
                    self.compare(
                        Side::Response,
                        &format!("{subject}, response"),
                        node(&a),
                        node(&b),
                    );
                }
            }
            (Some(_), None) => self.push(Class::Breaking, subject, "success response removed"),
            (None, Some(_)) => self.push(Class::Additive, subject, "success response documented"),
            (None, None) => {}
        }
    }

    fn security(&mut self, subject: &str, old: &Operation, new: &Operation) {
        let scopes = |api: &OpenAPI, op: &Operation| -> BTreeSet<String> {
            op.security
                .as_ref()
                .or(api.security.as_ref())
                .into_iter()
                .flatten()
                .flat_map(|req| {
                    req.iter()
                        .flat_map(|(scheme, s)| s.iter().map(move |x| format!("{scheme}:{x}")))
                })
                .collect()
        };
        let (a, b) = (scopes(self.old, old), scopes(self.new, new));
        for s in b.difference(&a) {
            self.push(Class::Breaking, subject, format!("now requires scope {s}"));
        }
        for s in a.difference(&b) {
            self.push(
                Class::Additive,
                subject,
                format!("no longer requires scope {s}"),
            );
        }
    }

    fn schemas(&mut self) {
        let empty = Default::default();
        let old = self.old.components.as_ref().map_or(&empty, |c| &c.schemas);
        let new = self.new.components.as_ref().map_or(&empty, |c| &c.schemas);
        for name in old.keys().filter(|k| !new.contains_key(*k)) {
            let subject = format!("schema {name}{}", self.used_by(name));
            self.push(Class::Breaking, &subject, "type removed");
        }
        for (name, s) in new {
            let subject = format!("schema {name}{}", self.used_by(name));
            let Some(o) = old.get(name) else {
                self.push(Class::Additive, &subject, "new type");
                continue;
            };
            let side = if self.requests.contains(name) {
                Side::Request
            } else {
                Side::Response
            };
            self.compare(side, &format!("schema {name}"), node(o), node(s));
        }
    }

    /// Compares two schemas found at `at` (a subject: `schema X`, `schema X field y`, an
    /// operation's parameter, …).
    fn compare(&mut self, side: Side, at: &str, old: Node<'_>, new: Node<'_>) {
        let (old, onull) = unwrap_all_of(old);
        let (new, nnull) = unwrap_all_of(new);
        let subject = self.subject_of(at);
        if let (Node::Ref(a), Node::Ref(b)) = (&old, &new) {
            if a != b {
                self.push(Class::Breaking, &subject, format!("type {a} → {b}"));
            } else if onull != nnull && !at.contains(" field ") {
                self.push(
                    Class::Breaking,
                    &subject,
                    format!("nullable {onull} → {nnull}"),
                );
            }
            return;
        }
        let (Node::Schema(os), Node::Schema(ns)) = (&old, &new) else {
            self.push(
                Class::Breaking,
                &subject,
                format!("type {} → {}", kind_name(&old), kind_name(&new)),
            );
            return;
        };
        if onull != nnull && !at.contains(" field ") && !at.contains(" parameter ") {
            self.push(
                Class::Breaking,
                &subject,
                format!("nullable {onull} → {nnull}"),
            );
        }
        let narrow = if side == Side::Request {
            Class::Breaking
        } else {
            Class::Additive
        };
        match (&os.schema_kind, &ns.schema_kind) {
            (SchemaKind::Type(Type::String(a)), SchemaKind::Type(Type::String(b))) => {
                if a.format != b.format {
                    self.push(
                        Class::Breaking,
                        &subject,
                        format!("format {} → {}", kind_name(&old), kind_name(&new)),
                    );
                }
                let ea: BTreeSet<String> = a.enumeration.iter().flatten().cloned().collect();
                let eb: BTreeSet<String> = b.enumeration.iter().flatten().cloned().collect();
                match (ea.is_empty(), eb.is_empty()) {
                    (true, false) => self.push(
                        Class::Breaking,
                        &subject,
                        format!(
                            "narrowed from any string to the values {}",
                            eb.iter()
                                .map(|v| format!("{v:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    (false, true) => self.push(
                        Class::Breaking,
                        &subject,
                        "widened from an enum to any string (its Rust type changes)",
                    ),
                    (false, false) => {
                        for v in eb.difference(&ea) {
                            self.push(Class::Additive, &subject, format!("new enum value {v:?}"));
                        }
                        for v in ea.difference(&eb) {
                            self.push(
                                Class::Breaking,
                                &subject,
                                format!("enum value {v:?} removed"),
                            );
                        }
                    }
                    (true, true) => {}
                }
                if b.max_length
                    .is_some_and(|m| a.max_length.is_none_or(|o| m < o))
                    || b.min_length
                        .is_some_and(|m| a.min_length.is_none_or(|o| m > o))
                    || (b.pattern.is_some() && b.pattern != a.pattern)
                {
                    self.push(
                        narrow,
                        &subject,
                        "accepts fewer strings (length or pattern)",
                    );
                } else if (a.max_length, a.min_length, &a.pattern)
                    != (b.max_length, b.min_length, &b.pattern)
                {
                    self.push(
                        Class::Additive,
                        &subject,
                        "accepts more strings (length or pattern)",
                    );
                }
            }
            (SchemaKind::Type(Type::Integer(a)), SchemaKind::Type(Type::Integer(b))) => {
                if a.format != b.format || int_class(a.minimum) != int_class(b.minimum) {
                    self.push(
                        Class::Breaking,
                        &subject,
                        format!(
                            "integer {}{} → {}{} (its Rust type changes)",
                            kind_name(&old),
                            a.minimum
                                .map(|m| format!(" minimum {m}"))
                                .unwrap_or_default(),
                            kind_name(&new),
                            b.minimum
                                .map(|m| format!(" minimum {m}"))
                                .unwrap_or_default(),
                        ),
                    );
                } else if b.minimum.is_some_and(|m| a.minimum.is_none_or(|o| m > o))
                    || b.maximum.is_some_and(|m| a.maximum.is_none_or(|o| m < o))
                {
                    self.push(
                        narrow,
                        &subject,
                        "accepts fewer integers (minimum or maximum)",
                    );
                } else if (a.minimum, a.maximum) != (b.minimum, b.maximum) {
                    self.push(
                        Class::Additive,
                        &subject,
                        "accepts more integers (minimum or maximum)",
                    );
                }
            }
            (SchemaKind::Type(Type::Number(a)), SchemaKind::Type(Type::Number(b))) => {
                if a.format != b.format {
                    self.push(
                        Class::Breaking,
                        &subject,
                        format!("{} → {}", kind_name(&old), kind_name(&new)),
                    );
                } else if b.minimum.is_some_and(|m| a.minimum.is_none_or(|o| m > o))
                    || b.maximum.is_some_and(|m| a.maximum.is_none_or(|o| m < o))
                {
                    self.push(
                        narrow,
                        &subject,
                        "accepts fewer numbers (minimum or maximum)",
                    );
                }
            }
            (SchemaKind::Type(Type::Boolean(_)), SchemaKind::Type(Type::Boolean(_))) => {}
            (SchemaKind::Type(Type::Array(a)), SchemaKind::Type(Type::Array(b))) => {
                if let (Some(x), Some(y)) = (&a.items, &b.items) {
                    self.compare(side, &format!("{at}[]"), node_boxed(x), node_boxed(y));
                }
            }
            (SchemaKind::Type(Type::Object(a)), SchemaKind::Type(Type::Object(b))) => {
                self.object(side, at, a, b);
            }
            (SchemaKind::OneOf { one_of: a }, SchemaKind::OneOf { one_of: b })
            | (SchemaKind::AnyOf { any_of: a }, SchemaKind::AnyOf { any_of: b }) => {
                let (ma, mb) = (member_names(a), member_names(b));
                for m in mb.difference(&ma) {
                    self.push(Class::Additive, &subject, format!("new alternative {m}"));
                }
                for m in ma.difference(&mb) {
                    self.push(
                        Class::Breaking,
                        &subject,
                        format!("alternative {m} removed"),
                    );
                }
            }
            (SchemaKind::Any(_), SchemaKind::Any(_))
            | (SchemaKind::AllOf { .. }, SchemaKind::AllOf { .. }) => {
                if serde_json::to_value(os).ok().map(strip)
                    != serde_json::to_value(ns).ok().map(strip)
                {
                    self.push(
                        Class::Breaking,
                        &subject,
                        "schema changed (unclassified): review it by hand",
                    );
                }
            }
            _ => self.push(
                Class::Breaking,
                &subject,
                format!("type {} → {}", kind_name(&old), kind_name(&new)),
            ),
        }
    }

    fn object(
        &mut self,
        side: Side,
        at: &str,
        a: &openapiv3::ObjectType,
        b: &openapiv3::ObjectType,
    ) {
        let subject = self.subject_of(at);
        for name in a
            .properties
            .keys()
            .filter(|k| !b.properties.contains_key(*k))
        {
            self.push(
                Class::Breaking,
                &field_subject(&subject, name),
                "field removed",
            );
        }
        for (name, p) in &b.properties {
            let fsub = field_subject(&subject, name);
            let required = b.required.contains(name);
            let Some(o) = a.properties.get(name) else {
                let class = if side == Side::Request && required {
                    Class::Breaking
                } else {
                    Class::Additive
                };
                let what = match (side, required) {
                    (Side::Request, true) => "new required request field",
                    (Side::Request, false) => "new optional request field",
                    (Side::Response, true) => "new response field",
                    (Side::Response, false) => "new optional response field",
                };
                self.push(class, &fsub, what);
                continue;
            };
            let was_required = a.required.contains(name);
            let rust_optional = |s: &ReferenceOr<Box<Schema>>, req: bool| {
                let (nullable, default) = match s {
                    ReferenceOr::Item(s) => {
                        (s.schema_data.nullable, s.schema_data.default.is_some())
                    }
                    ReferenceOr::Reference { .. } => (false, false),
                };
                nullable || (!req && !default)
            };
            if side == Side::Request && was_required != required {
                self.push(
                    Class::Breaking,
                    &fsub,
                    if required {
                        "request field now required (a new argument of `builder(…)`)"
                    } else {
                        "request field now optional (no longer an argument of `builder(…)`)"
                    },
                );
            } else if rust_optional(o, was_required) != rust_optional(p, required) {
                self.push(
                    Class::Breaking,
                    &fsub,
                    if rust_optional(p, required) {
                        "now optional or nullable (its Rust type becomes `Option<…>`)"
                    } else {
                        "now always present (its Rust type is no longer `Option<…>`)"
                    },
                );
            } else if was_required != required {
                self.push(
                    Class::Additive,
                    &fsub,
                    if required {
                        "now required"
                    } else {
                        "now optional (with a default)"
                    },
                );
            }
            let here = if at.contains(" field ") {
                format!("{at}.{name}")
            } else {
                format!("{at} field {name}")
            };
            self.compare(side, &here, node_boxed(o), node_boxed(p));
        }
    }

    /// `schema X field y` gains the operations that use X.
    fn subject_of(&self, at: &str) -> String {
        match at.strip_prefix("schema ") {
            Some(rest) => {
                let name = rest.split([' ', '[', '.']).next().unwrap_or(rest);
                format!("{at}{}", self.used_by(name))
            }
            None => at.to_owned(),
        }
    }
}

fn field_subject(subject: &str, name: &str) -> String {
    // `schema X (used by …)` → `schema X field name (used by …)`.
    match subject.split_once(" (used by ") {
        Some((head, tail)) if head.contains(" field ") => format!("{head}.{name} (used by {tail}"),
        Some((head, tail)) => format!("{head} field {name} (used by {tail}"),
        None if subject.contains(" field ") => format!("{subject}.{name}"),
        None => format!("{subject} field {name}"),
    }
}

fn strip(mut v: Value) -> Value {
    strip_docs(&mut v);
    v
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
