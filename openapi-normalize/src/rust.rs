//! Generates the Rust client from a document and describes its Rust surface (feature `rust`).
//!
//! One function, [`generate`], is shared by the SDK's build script (which writes the code) and
//! its spec tests (which describe the surface of a patched document without a second crate
//! build): normalise → [`mark_formats`](crate::mark_formats) → progenitor with the
//! [`RustTypes`] conversions → give fields their readers (`deserialize_with`) → shape the types
//! so the document can grow without a semver-major release (see `evolve`) → describe.

use std::fmt::Write as _;

use quote::{ToTokens, quote};
use serde_json::Value;
use syn::punctuated::Punctuated;

/// How the document's schemas become Rust types: the table a build script passes to
/// [`generate`]. See the SDK's `openapi/README.md` ("how a schema maps to Rust types").
#[derive(Debug, Clone, Copy)]
pub struct RustTypes<'a> {
    /// `("Schema.property", "format")`: the normaliser sets this `format` on that property.
    pub marks: &'a [(&'a str, &'a str)],
    /// `("format", "rust::Type")`: a string schema with this `format` becomes this type
    /// (progenitor `with_conversion`). The type's own `Deserialize` reads the wire value.
    pub conversions: &'a [(&'a str, &'a str)],
    /// `("Rust field type", "path::to::reader")`: every field of a response type whose
    /// generated type is this (written without spaces, as the generator spells it) is read with
    /// `#[serde(deserialize_with = reader)]` (and `default` when the property is optional).
    pub readers: &'a [(&'a str, &'a str)],
    /// The reader for a non-`Option` field the document gives a `default` (`""`, `0`, `[]`):
    /// it reads `null` as that default, as the official SDKs do.
    pub null_as_default: &'a str,
}

/// The outcome of [`generate`].
#[derive(Debug, Clone)]
pub struct Generated {
    /// The normalised, marked document progenitor read.
    pub document: Value,
    /// The generated code, pretty-printed.
    pub code: String,
    /// The Rust surface: see [`describe_rust_surface`].
    pub surface: String,
}

/// Normalises `raw`, marks it, generates the client with progenitor (builder interface, merged
/// tags, `reqwest_middleware::ClientWithMiddleware` inner type, hooks expected), gives fields
/// their readers, and describes the Rust surface.
///
/// # Errors
///
/// A message naming what failed: the normaliser's JSON Pointer, progenitor's error, or a
/// type table entry that does not parse as a Rust type.
pub fn generate(raw: Value, types: &RustTypes<'_>) -> Result<Generated, String> {
    let mut document = crate::normalize(raw).map_err(|e| e.to_string())?;
    crate::mark_formats(&mut document, types.marks).map_err(|e| e.to_string())?;
    let spec: openapiv3::OpenAPI = serde_json::from_value(document.clone()).map_err(|e| {
        format!("the normalised document is not OpenAPI 3.0 progenitor can read: {e}")
    })?;

    let mut settings = progenitor::GenerationSettings::default();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged)
        .with_inner_type(
            "reqwest_middleware::ClientWithMiddleware"
                .parse()
                .map_err(|e| format!("inner type: {e}"))?,
        )
        .with_hooks(progenitor::HooksMode::Expected)
        .with_derive("PartialEq");
    for (format, rust_type) in types.conversions {
        settings.with_conversion(
            schemars::schema::SchemaObject {
                instance_type: Some(schemars::schema::InstanceType::String.into()),
                format: Some((*format).to_owned()),
                ..Default::default()
            },
            *rust_type,
            std::iter::empty(),
        );
    }
    let mut generator = progenitor::Generator::new(&settings);
    let tokens = generator
        .generate_tokens(&spec)
        .map_err(|e| format!("progenitor cannot generate a client: {e}"))?;
    let mut file: syn::File =
        syn::parse2(tokens).map_err(|e| format!("generated code does not parse: {e}"))?;
    add_readers(&mut file, types)?;
    crate::evolve::shape_for_evolution(&mut file)?;
    let surface = describe_rust_surface(&file);
    Ok(Generated {
        document,
        code: prettyplease::unparse(&file),
        surface,
    })
}

/// A type as one whitespace-free string: `::std::option::Option<::std::string::String>`.
pub(crate) fn type_key(ty: &syn::Type) -> String {
    ty.to_token_stream()
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn is_serde(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("serde")
}

fn derives_deserialize(item: &syn::ItemStruct) -> bool {
    item.attrs.iter().any(|a| {
        a.path().is_ident("derive") && a.to_token_stream().to_string().contains("Deserialize")
    })
}

pub(crate) fn types_module(file: &mut syn::File) -> Option<&mut Vec<syn::Item>> {
    file.items.iter_mut().find_map(|item| match item {
        syn::Item::Mod(m) if m.ident == "types" => m.content.as_mut().map(|(_, items)| items),
        _ => None,
    })
}

/// Adds `deserialize_with` (and `default` where the field is optional) to every field of the
/// `types` module's deserializable structs that has a reader in the table, and the
/// null-as-default reader to non-`Option` fields with a default.
fn add_readers(file: &mut syn::File, types: &RustTypes<'_>) -> Result<(), String> {
    let parse_path = |p: &str| -> Result<syn::LitStr, String> {
        syn::parse_str::<syn::Path>(p).map_err(|e| format!("reader `{p}` is not a path: {e}"))?;
        syn::parse_str::<syn::LitStr>(&format!("{p:?}")).map_err(|e| format!("reader `{p}`: {e}"))
    };
    let Some(items) = types_module(file) else {
        return Ok(());
    };
    for item in items.iter_mut() {
        let syn::Item::Struct(s) = item else { continue };
        if !derives_deserialize(s) {
            continue;
        }
        let syn::Fields::Named(fields) = &mut s.fields else {
            continue;
        };
        for field in fields.named.iter_mut() {
            let key = type_key(&field.ty);
            let is_option = key.starts_with("::std::option::Option<");
            let mut metas: Vec<syn::Meta> = Vec::new();
            for attr in field.attrs.iter().filter(|a| is_serde(a)) {
                let list = attr
                    .parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
                    .map_err(|e| format!("generated serde attribute does not parse: {e}"))?;
                metas.extend(list);
            }
            let has =
                |name: &str, metas: &[syn::Meta]| metas.iter().any(|m| m.path().is_ident(name));
            let plain_default = metas
                .iter()
                .any(|m| matches!(m, syn::Meta::Path(p) if p.is_ident("default")));
            let reader =
                if let Some((_, reader)) = types.readers.iter().find(|(t, _)| {
                    t.chars().filter(|c| !c.is_whitespace()).collect::<String>() == key
                }) {
                    Some(*reader)
                } else if !is_option && plain_default {
                    Some(types.null_as_default)
                } else {
                    None
                };
            let Some(reader) = reader else { continue };
            // A required `Option` carries `deserialize_with = Option::deserialize`: replaced.
            let required_option = has("deserialize_with", &metas);
            metas.retain(|m| !m.path().is_ident("deserialize_with"));
            // `Option` fields are optional to serde only without `deserialize_with`.
            if is_option && !required_option && !has("default", &metas) {
                metas.push(syn::parse_quote!(default));
            }
            let lit = parse_path(reader)?;
            metas.push(syn::parse_quote!(deserialize_with = #lit));
            field.attrs.retain(|a| !is_serde(a));
            field.attrs.push(syn::parse_quote!(#[serde(#(#metas),*)]));
        }
    }
    Ok(())
}

/// A readable type: `Option<DateTime<Utc>>` for the generator's fully qualified spelling.
fn short_type(ty: &str) -> String {
    let mut s: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    for prefix in [
        "::std::option::",
        "::std::string::",
        "::std::vec::",
        "::std::collections::",
        "::std::num::",
        "std::num::",
        "::chrono::offset::",
        "::chrono::",
        "::serde_json::",
        "::rust_decimal::",
        "crate::types::",
        "crate::redacted::",
        "types::",
        "super::",
    ] {
        s = s.replace(prefix, "");
    }
    s.replace(",>", ">").replace(',', ", ")
}

fn serde_reader(field: &syn::Field) -> Option<String> {
    field.attrs.iter().filter(|a| is_serde(a)).find_map(|attr| {
        let list = attr
            .parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
            .ok()?;
        list.iter().find_map(|m| match m {
            syn::Meta::NameValue(nv) if nv.path.is_ident("deserialize_with") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => {
                    let v = s.value();
                    Some(v.rsplit("::").next().unwrap_or(&v).to_owned())
                }
                _ => None,
            },
            _ => None,
        })
    })
}

fn has_default(field: &syn::Field) -> bool {
    field.attrs.iter().filter(|a| is_serde(a)).any(|attr| {
        attr.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
            .is_ok_and(|l| l.iter().any(|m| m.path().is_ident("default")))
    })
}

/// Describes the generated Rust surface, one line per fact, sorted within each block so the
/// text changes only where the API does:
///
/// - `# operations`: each `Client` method with its builder, then each builder's setters (the
///   value type they take) and `send`'s return type;
/// - `# types`: each struct of `types` with its fields and Rust types, marked `(default)` when
///   a missing field is allowed, and `(de: reader)` when it has a reader, and for a request
///   body the required arguments of its `builder(…)`; each enum with its variants.
pub fn describe_rust_surface(file: &syn::File) -> String {
    let mut ops: Vec<String> = Vec::new();
    let mut builders: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for item in &file.items {
        match item {
            syn::Item::Impl(imp) if type_key(&imp.self_ty) == "Client" && imp.trait_.is_none() => {
                for f in imp.items.iter().filter_map(|i| match i {
                    syn::ImplItem::Fn(f) => Some(f),
                    _ => None,
                }) {
                    if let syn::ReturnType::Type(_, ty) = &f.sig.output {
                        let ret = short_type(&type_key(ty))
                            .replace("builder::", "")
                            .replace("<'_>", "");
                        if matches!(f.vis, syn::Visibility::Public(_)) && ret != "&str" {
                            ops.push(format!("client.{}() -> {ret}", f.sig.ident));
                        }
                    }
                }
            }
            syn::Item::Mod(m) if m.ident == "builder" => {
                for imp in m
                    .content
                    .iter()
                    .flat_map(|(_, items)| items)
                    .filter_map(|i| match i {
                        syn::Item::Impl(imp) => Some(imp),
                        _ => None,
                    })
                {
                    let name = short_type(&type_key(&imp.self_ty)).replace("<'a>", "");
                    let lines = builders.entry(name.clone()).or_default();
                    for f in imp.items.iter().filter_map(|i| match i {
                        syn::ImplItem::Fn(f) => Some(f),
                        _ => None,
                    }) {
                        let fname = f.sig.ident.to_string();
                        if fname == "new" || fname.ends_with("_map") {
                            continue;
                        }
                        let arg = f
                            .sig
                            .generics
                            .where_clause
                            .iter()
                            .flat_map(|w| &w.predicates)
                            .find_map(|p| match p {
                                syn::WherePredicate::Type(t) => t.bounds.iter().find_map(|b| {
                                    let b = type_key_bound(b);
                                    b.strip_prefix("std::convert::TryInto<")
                                        .and_then(|r| r.strip_suffix('>'))
                                        .map(short_type)
                                }),
                                _ => None,
                            })
                            .unwrap_or_default();
                        let ret = match &f.sig.output {
                            syn::ReturnType::Type(_, ty) if fname == "send" => {
                                format!(" -> {}", short_type(&type_key(ty)))
                            }
                            _ => String::new(),
                        };
                        lines.push(format!("{name}.{fname}({arg}){ret}"));
                    }
                }
            }
            _ => {}
        }
    }
    ops.sort();
    let mut out = String::from("# operations\n");
    for op in ops {
        let _ = writeln!(out, "{op}");
        let builder = op.rsplit(" -> ").next().unwrap_or_default().to_owned();
        if let Some(lines) = builders.get_mut(&builder) {
            lines.sort();
            for l in lines.iter() {
                let _ = writeln!(out, "  {l}");
            }
        }
    }
    out.push_str("\n# types\n");
    let mut types: Vec<(String, Vec<String>)> = Vec::new();
    let items = file.items.iter().find_map(|item| match item {
        syn::Item::Mod(m) if m.ident == "types" => m.content.as_ref().map(|(_, i)| i),
        _ => None,
    });
    // Request bodies: `Type::builder(required…)` (see `evolve`).
    let mut builder_args: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for item in items.into_iter().flatten() {
        let syn::Item::Impl(imp) = item else { continue };
        if imp.trait_.is_some() {
            continue;
        }
        for f in &imp.items {
            if let syn::ImplItem::Fn(f) = f
                && f.sig.ident == "builder"
                && !f.sig.inputs.is_empty()
            {
                let args = f
                    .sig
                    .inputs
                    .iter()
                    .filter_map(|a| match a {
                        syn::FnArg::Typed(t) => Some(t.pat.to_token_stream().to_string()),
                        syn::FnArg::Receiver(_) => None,
                    })
                    .collect();
                builder_args.insert(type_key(&imp.self_ty), args);
            }
        }
    }
    for item in items.into_iter().flatten() {
        match item {
            syn::Item::Struct(s) => {
                let name = s.ident.to_string();
                let mut lines = Vec::new();
                if let Some(args) = builder_args.get(&name) {
                    lines.push(format!("{name}::builder({})", args.join(", ")));
                }
                match &s.fields {
                    syn::Fields::Named(fields) => {
                        for f in &fields.named {
                            let fname = f
                                .ident
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default();
                            let mut line =
                                format!("{name}.{fname}: {}", short_type(&type_key(&f.ty)));
                            if has_default(f) {
                                line.push_str(" (default)");
                            }
                            if let Some(r) = serde_reader(f) {
                                let _ = write!(line, " (de: {r})");
                            }
                            lines.push(line);
                        }
                        lines.sort();
                        types.push((name, lines));
                    }
                    syn::Fields::Unnamed(fields) => {
                        let inner: Vec<String> = fields
                            .unnamed
                            .iter()
                            .map(|f| short_type(&type_key(&f.ty)))
                            .collect();
                        types.push((format!("{name}({})", inner.join(", ")), lines));
                    }
                    syn::Fields::Unit => types.push((name, lines)),
                }
            }
            syn::Item::Enum(e) => {
                let name = e.ident.to_string();
                let mut lines: Vec<String> = e
                    .variants
                    .iter()
                    .map(|v| {
                        let fields = match &v.fields {
                            syn::Fields::Unnamed(f) => format!(
                                "({})",
                                f.unnamed
                                    .iter()
                                    .map(|f| short_type(&type_key(&f.ty)))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            syn::Fields::Named(_) => " {…}".to_owned(),
                            syn::Fields::Unit => String::new(),
                        };
                        format!("{name}::{}{fields}", v.ident)
                    })
                    .collect();
                lines.sort();
                types.push((format!("enum {name}"), lines));
            }
            syn::Item::Type(t) => {
                types.push((
                    format!("type {} = {}", t.ident, short_type(&type_key(&t.ty))),
                    vec![],
                ));
            }
            _ => {}
        }
    }
    types.sort();
    for (head, lines) in types {
        let _ = writeln!(out, "{head}");
        for l in lines {
            let _ = writeln!(out, "  {l}");
        }
    }
    out
}

fn type_key_bound(b: &syn::TypeParamBound) -> String {
    let q = quote!(#b);
    q.to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// A type table read from the source of a Rust file (such as the SDK's `openapi/rust_types.rs`)
/// at run time: see [`parse_type_table`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeTable {
    /// [`RustTypes::marks`].
    pub marks: Vec<(String, String)>,
    /// [`RustTypes::conversions`].
    pub conversions: Vec<(String, String)>,
    /// [`RustTypes::readers`].
    pub readers: Vec<(String, String)>,
    /// [`RustTypes::null_as_default`].
    pub null_as_default: String,
}

impl TypeTable {
    /// Calls `f` with this table as [`RustTypes`].
    pub fn with<R>(&self, f: impl FnOnce(&RustTypes<'_>) -> R) -> R {
        fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
            v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
        }
        let (marks, conversions, readers) = (
            pairs(&self.marks),
            pairs(&self.conversions),
            pairs(&self.readers),
        );
        f(&RustTypes {
            marks: &marks,
            conversions: &conversions,
            readers: &readers,
            null_as_default: &self.null_as_default,
        })
    }
}

/// Reads the `const …: RustTypes = RustTypes { … }` in `source` (string literals only), so a
/// tool can generate with the same table a build script `include!`s.
///
/// # Errors
///
/// A message when the source does not parse or holds no such constant.
pub fn parse_type_table(source: &str) -> Result<TypeTable, String> {
    let file =
        syn::parse_file(source).map_err(|e| format!("the type table does not parse: {e}"))?;
    let expr = file
        .items
        .iter()
        .find_map(|i| match i {
            syn::Item::Const(c) if type_key(&c.ty).ends_with("RustTypes<'static>") => {
                Some(&*c.expr)
            }
            _ => None,
        })
        .ok_or("the type table has no `const …: RustTypes<'static>`")?;
    let syn::Expr::Struct(s) = expr else {
        return Err("the type table's constant is not a struct expression".into());
    };
    let lit = |e: &syn::Expr| -> Result<String, String> {
        match e {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Ok(s.value()),
            other => Err(format!("not a string literal: {}", other.to_token_stream())),
        }
    };
    let pairs = |e: &syn::Expr| -> Result<Vec<(String, String)>, String> {
        let syn::Expr::Reference(r) = e else {
            return Err("expected `&[(\"…\", \"…\"), …]`".into());
        };
        let syn::Expr::Array(a) = &*r.expr else {
            return Err("expected `&[(\"…\", \"…\"), …]`".into());
        };
        a.elems
            .iter()
            .map(|t| match t {
                syn::Expr::Tuple(t) if t.elems.len() == 2 => {
                    Ok((lit(&t.elems[0])?, lit(&t.elems[1])?))
                }
                _ => Err("expected a pair of string literals".to_owned()),
            })
            .collect()
    };
    let mut table = TypeTable::default();
    for field in &s.fields {
        let syn::Member::Named(name) = &field.member else {
            continue;
        };
        match name.to_string().as_str() {
            "marks" => table.marks = pairs(&field.expr)?,
            "conversions" => table.conversions = pairs(&field.expr)?,
            "readers" => table.readers = pairs(&field.expr)?,
            "null_as_default" => table.null_as_default = lit(&field.expr)?,
            other => return Err(format!("unknown type table field `{other}`")),
        }
    }
    Ok(table)
}
