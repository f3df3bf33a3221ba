//! The `ralio` crate's public API, listed from its source and compared with a committed
//! snapshot (`snapshots/it__public_api__ralio_public_api.snap`), so that any change to the
//! surface is a reviewable diff.
//!
//! After an intended change, accept the new listing and review it:
//!
//! ```text
//! INSTA_UPDATE=always cargo test -p ralio --all-features --test it -- public_api::
//! git diff tests/it/snapshots/
//! ```
//!
//! **How.** A `syn` walk from `src/lib.rs`, following `mod` declarations (and the generated
//! code `src/api.rs` includes from `OUT_DIR`, which Cargo sets for this test too), resolving
//! `use` paths through the module tree. Every item reachable under a public path is listed
//! once with its signature, under its shortest public path: functions and methods with their
//! arguments and return type, public fields, enum variants, trait items (`(provided)` when
//! they have a body), constants and aliases with their types, the trait impls of public types
//! (written and derived), `#[non_exhaustive]`, `#[deprecated]` and `#[cfg(…)]` noted; every other public path of an
//! item is a `pub use` line pointing at it. The listing is the surface with every feature on
//! (a `cfg` is shown, not evaluated), sorted by path.
//!
//! **Why not rustdoc JSON** (the `public-api` crate): it needs the unstable JSON output
//! (`RUSTC_BOOTSTRAP=1`), a `public-api` release matching this rustc's `FORMAT_VERSION`, and a
//! second build of the crate and all its dependencies (aws-lc-sys included) in another target
//! directory from inside the test: minutes on a cold CI runner, where this walk takes well
//! under a second. What the walk cannot see, and says so in the listing: items a `macro_rules!`
//! invocation makes (the invocation and the macro are listed, so changing either shows), and
//! auto traits (`Send`, `Sync`) and blanket impls, which `cargo semver-checks` (`just
//! semver-check`) covers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use quote::ToTokens as _;
use syn::{Attribute, Item, Visibility};

#[test]
fn ralio_public_api() {
    let listing = Crate::load().listing();
    insta::assert_snapshot!("ralio_public_api", listing);
}

/// A public item is found once per public path; the listing names it once.
#[test]
fn each_item_is_listed_under_one_path() {
    let listing = Crate::load().listing();
    assert!(
        listing.contains("pub struct ralio::RalioClient"),
        "{listing}"
    );
    assert!(
        listing.contains("pub use ralio::client::RalioClient => ralio::RalioClient"),
        "{listing}"
    );
    // Crate-private items are not listed.
    assert!(!listing.contains("validate_base_url"), "{listing}");
}

/// One module of the crate: its items and `use` declarations.
struct Module {
    name: String,
    parent: Option<usize>,
    /// The module's own `cfg`s and its ancestors'.
    cfgs: Vec<String>,
    /// Declared `pub mod` (or the root).
    public: bool,
    children: BTreeMap<String, usize>,
    items: Vec<Item>,
    uses: Vec<UseLeaf>,
}

/// One name a `use` declaration brings in.
#[derive(Clone)]
struct UseLeaf {
    public: bool,
    cfgs: Vec<String>,
    path: Vec<String>,
    /// `None` for a glob.
    name: Option<String>,
}

/// What a path resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    /// An item (by module and index in its `items`).
    Item(usize, usize),
    Module(usize),
    /// A path outside this crate, as written.
    External(String),
    /// A name a macro invocation in this module defines (or nothing the walk can see).
    Unseen(usize, String),
}

struct Crate {
    modules: Vec<Module>,
}

/// Every public path of each target, with the `cfg`s on the way there.
type Found = BTreeMap<Target, BTreeSet<(String, Vec<String>)>>;

impl Crate {
    fn load() -> Crate {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut krate = Crate {
            modules: Vec::new(),
        };
        let file = parse(&root.join("lib.rs"));
        krate.add_module("ralio".into(), None, Vec::new(), true, file.items, &root);
        krate
    }

    /// Adds a module from its items; `dir` is where its `mod x;` children live.
    fn add_module(
        &mut self,
        name: String,
        parent: Option<usize>,
        cfgs: Vec<String>,
        public: bool,
        items: Vec<Item>,
        dir: &Path,
    ) -> usize {
        let idx = self.modules.len();
        self.modules.push(Module {
            name,
            parent,
            cfgs: cfgs.clone(),
            public,
            children: BTreeMap::new(),
            items: Vec::new(),
            uses: Vec::new(),
        });
        // `include!(concat!(env!("OUT_DIR"), "/file.rs"))` (src/api.rs): the generated code,
        // read in place of the invocation.
        let mut expanded = Vec::new();
        for item in items {
            match item {
                Item::Macro(m) if m.mac.path.is_ident("include") => {
                    let tokens = m.mac.tokens.to_string();
                    let file = tokens
                        .split('"')
                        .find(|s| s.starts_with('/') && s.ends_with(".rs"))
                        .unwrap_or_else(|| {
                            panic!("an include! the listing cannot follow: {tokens}")
                        });
                    let path = PathBuf::from(env!("OUT_DIR")).join(file.trim_start_matches('/'));
                    expanded.extend(parse(&path).items);
                }
                other => expanded.push(other),
            }
        }
        let mut rest = Vec::new();
        for item in expanded {
            if is_test_only(item_attrs(&item)) {
                continue;
            }
            match item {
                Item::Mod(m) => {
                    let child = m.ident.to_string();
                    let mut child_cfgs = cfgs.clone();
                    child_cfgs.extend(cfg_strings(&m.attrs));
                    let public = matches!(m.vis, Visibility::Public(_));
                    let items = match m.content {
                        Some((_, items)) => items,
                        None => {
                            let flat = dir.join(format!("{child}.rs"));
                            let nested = dir.join(&child).join("mod.rs");
                            parse(if flat.exists() { &flat } else { &nested }).items
                        }
                    };
                    let child_dir = dir.join(&child);
                    let c = self.add_module(
                        child.clone(),
                        Some(idx),
                        child_cfgs,
                        public,
                        items,
                        &child_dir,
                    );
                    self.modules[idx].children.insert(child, c);
                }
                Item::Use(u) => {
                    let public = matches!(u.vis, Visibility::Public(_));
                    let cfgs = cfg_strings(&u.attrs);
                    let mut leaves = Vec::new();
                    flatten_use(&u.tree, &mut Vec::new(), &mut leaves);
                    for (path, name) in leaves {
                        self.modules[idx].uses.push(UseLeaf {
                            public,
                            cfgs: cfgs.clone(),
                            path,
                            name,
                        });
                    }
                }
                other => rest.push(other),
            }
        }
        self.modules[idx].items = rest;
        idx
    }

    /// The module's path inside the crate (`crate::a::b`).
    fn crate_path(&self, m: usize) -> String {
        let mut names = Vec::new();
        let mut at = Some(m);
        while let Some(i) = at {
            names.push(self.modules[i].name.clone());
            at = self.modules[i].parent;
        }
        names.reverse();
        names[0] = "crate".into();
        names.join("::")
    }

    /// Resolves `path` as written in module `m`.
    fn resolve(&self, m: usize, path: &[String], depth: usize) -> Option<Target> {
        if depth > 16 {
            return None;
        }
        let (first, rest) = path.split_first()?;
        let start = match first.as_str() {
            "crate" => Target::Module(0),
            "self" => Target::Module(m),
            "super" => Target::Module(self.modules[m].parent?),
            _ => match self.lookup(m, first, depth, true) {
                Some(t) => t,
                None => return Some(Target::External(path.join("::"))),
            },
        };
        let mut at = start;
        for seg in rest {
            at = match at {
                Target::Module(i) => match seg.as_str() {
                    "super" => Target::Module(self.modules[i].parent?),
                    "self" => Target::Module(i),
                    _ => self
                        .lookup(i, seg, depth, false)
                        .unwrap_or(Target::Unseen(i, seg.clone())),
                },
                Target::External(p) => Target::External(format!("{p}::{seg}")),
                // A path into an item (an enum variant, an associated item): not listed apart.
                Target::Item(..) | Target::Unseen(..) => return None,
            };
        }
        Some(at)
    }

    /// A name as seen inside module `m`: a child module, an item, or a `use` binding.
    /// `lexical`: also the names only visible inside `m` (its private `use`s, and extern
    /// crates for a first segment).
    fn lookup(&self, m: usize, name: &str, depth: usize, lexical: bool) -> Option<Target> {
        let module = &self.modules[m];
        if let Some(&c) = module.children.get(name) {
            return Some(Target::Module(c));
        }
        if let Some(i) = module
            .items
            .iter()
            .position(|it| item_name(it).as_deref() == Some(name))
        {
            return Some(Target::Item(m, i));
        }
        for leaf in &module.uses {
            if leaf.name.as_deref() == Some(name) && (lexical || leaf.public) {
                let mut path = leaf.path.clone();
                if path.last().is_some_and(|last| last == "self") {
                    path.pop();
                }
                return self.resolve(m, &path, depth + 1);
            }
        }
        for leaf in &module.uses {
            if leaf.name.is_none()
                && (lexical || leaf.public)
                && let Some(Target::Module(g)) = self.resolve(m, &leaf.path, depth + 1)
                && g != m
                && let Some(t) = self.lookup(g, name, depth + 1, false)
            {
                return Some(t);
            }
        }
        None
    }

    /// Every public path of every reachable item and module, from the crate root.
    fn public_paths(&self) -> (Found, BTreeSet<String>) {
        let mut found = Found::new();
        let mut lines = BTreeSet::new();
        let mut queue = vec![(0usize, "ralio".to_owned(), Vec::<String>::new())];
        let mut seen = BTreeSet::new();
        while let Some((m, path, cfgs)) = queue.pop() {
            if !seen.insert((m, path.clone())) || path.matches("::").count() > 8 {
                continue;
            }
            found
                .entry(Target::Module(m))
                .or_default()
                .insert((path.clone(), cfgs.clone()));
            let module = &self.modules[m];
            for (name, &c) in &module.children {
                if self.modules[c].public {
                    let mut child_cfgs = cfgs.clone();
                    child_cfgs.extend(self.modules[c].cfgs.iter().skip(module.cfgs.len()).cloned());
                    queue.push((c, format!("{path}::{name}"), child_cfgs));
                }
            }
            for (i, item) in module.items.iter().enumerate() {
                if let (Some(name), true) = (item_name(item), is_public(item)) {
                    let mut item_cfgs = cfgs.clone();
                    item_cfgs.extend(cfg_strings(item_attrs(item)));
                    found
                        .entry(Target::Item(m, i))
                        .or_default()
                        .insert((format!("{path}::{name}"), item_cfgs));
                }
            }
            for leaf in module.uses.iter().filter(|l| l.public) {
                let mut leaf_cfgs = cfgs.clone();
                leaf_cfgs.extend(leaf.cfgs.iter().cloned());
                let mut target_path = leaf.path.clone();
                if target_path.last().is_some_and(|last| last == "self") {
                    target_path.pop();
                }
                match (&leaf.name, self.resolve(m, &target_path, 0)) {
                    (Some(name), Some(Target::Module(t))) => {
                        queue.push((t, format!("{path}::{name}"), leaf_cfgs));
                    }
                    (Some(name), Some(target)) => {
                        found
                            .entry(target)
                            .or_default()
                            .insert((format!("{path}::{name}"), leaf_cfgs));
                    }
                    (None, Some(Target::Module(t))) => {
                        // A glob: everything public in `t`, as if named here.
                        let g = &self.modules[t];
                        for (name, &c) in &g.children {
                            if self.modules[c].public {
                                queue.push((c, format!("{path}::{name}"), leaf_cfgs.clone()));
                            }
                        }
                        for (i, item) in g.items.iter().enumerate() {
                            if let (Some(name), true) = (item_name(item), is_public(item)) {
                                found
                                    .entry(Target::Item(t, i))
                                    .or_default()
                                    .insert((format!("{path}::{name}"), leaf_cfgs.clone()));
                            }
                        }
                        for l in g.uses.iter().filter(|l| l.public) {
                            let Some(name) = &l.name else { continue };
                            match self.resolve(t, &l.path, 0) {
                                Some(Target::Module(c)) => {
                                    queue.push((c, format!("{path}::{name}"), leaf_cfgs.clone()))
                                }
                                Some(other) => {
                                    found
                                        .entry(other)
                                        .or_default()
                                        .insert((format!("{path}::{name}"), leaf_cfgs.clone()));
                                }
                                None => {}
                            }
                        }
                    }
                    (None, Some(Target::External(p))) => {
                        lines.insert(format!(
                            "{}pub use {path}::* => {p}::*",
                            cfg_prefix(&leaf_cfgs)
                        ));
                    }
                    (_, other) => {
                        lines.insert(format!(
                            "{}pub use {path}::{} => unresolved {} ({other:?})",
                            cfg_prefix(&leaf_cfgs),
                            leaf.name.as_deref().unwrap_or("*"),
                            leaf.path.join("::"),
                        ));
                    }
                }
            }
        }
        (found, lines)
    }

    fn listing(&self) -> String {
        let (found, mut lines) = self.public_paths();
        // The canonical path of each target: the shortest, then the first by name.
        let mut canonical: HashMap<Target, (String, Vec<String>)> = HashMap::new();
        for (target, paths) in &found {
            let best = paths
                .iter()
                .min_by_key(|(p, _)| (p.matches("::").count(), p.clone()))
                .cloned()
                .expect("at least one path");
            for (p, cfgs) in paths {
                if *p != best.0 {
                    let shown = match target {
                        Target::External(e) => e.clone(),
                        _ => best.0.clone(),
                    };
                    lines.insert(format!("{}pub use {p} => {shown}", cfg_prefix(cfgs)));
                }
            }
            canonical.insert(target.clone(), best);
        }
        for (target, (path, cfgs)) in &canonical {
            let pre = cfg_prefix(cfgs);
            match target {
                Target::Module(_) => {
                    lines.insert(format!("{pre}pub mod {path}"));
                }
                Target::External(e) => {
                    lines.insert(format!("{pre}pub use {path} => {e}"));
                }
                Target::Unseen(m, name) => {
                    lines.insert(format!(
                        "{pre}pub {path} (made by a macro invocation in {}: see the macro lines)",
                        self.crate_path(*m)
                    ));
                    let _ = name;
                }
                Target::Item(m, i) => {
                    for line in describe_item(&self.modules[*m].items[*i], path) {
                        lines.insert(format!("{pre}{line}"));
                    }
                }
            }
        }
        // Traits the crate keeps to itself (`pub(crate)` or private): their impls are not
        // part of the surface.
        let private_traits: BTreeSet<String> = self
            .modules
            .iter()
            .flat_map(|module| &module.items)
            .filter_map(|item| match item {
                Item::Trait(t) if !matches!(t.vis, syn::Visibility::Public(_)) => {
                    Some(t.ident.to_string())
                }
                _ => None,
            })
            .collect();
        // Impl blocks anywhere in the crate whose type is public.
        for (m, module) in self.modules.iter().enumerate() {
            for item in &module.items {
                let Item::Impl(imp) = item else { continue };
                if is_test_only(&imp.attrs) {
                    continue;
                }
                let of_private_trait = imp.trait_.as_ref().is_some_and(|(_, path, _)| {
                    path.segments
                        .last()
                        .is_some_and(|last| private_traits.contains(&last.ident.to_string()))
                });
                if of_private_trait {
                    continue;
                }
                let Some(self_path) = type_path(&imp.self_ty) else {
                    continue;
                };
                let Some(target) = self.resolve(m, &self_path, 0) else {
                    continue;
                };
                let Some((type_path, cfgs)) = canonical.get(&target) else {
                    continue;
                };
                let mut cfgs = cfgs.clone();
                cfgs.extend(module.cfgs.iter().cloned());
                cfgs.extend(cfg_strings(&imp.attrs));
                cfgs.dedup();
                let pre = cfg_prefix(&cfgs);
                for line in describe_impl(imp, type_path) {
                    lines.insert(format!("{pre}{line}"));
                }
            }
        }
        // The crate's own item macros (`macro_rules!`) and their invocations: what they make
        // is not visible to this walk, so any change to either shows here. Other crates'
        // macros (`pin_project!`) only wrap items written out in the invocation.
        let own: BTreeSet<String> = self
            .modules
            .iter()
            .flat_map(|module| &module.items)
            .filter_map(|item| match item {
                Item::Macro(mac) => mac.ident.as_ref().map(ToString::to_string),
                _ => None,
            })
            .collect();
        for (m, module) in self.modules.iter().enumerate() {
            for item in &module.items {
                let Item::Macro(mac) = item else { continue };
                let body = flat_tokens(&mac.mac.tokens);
                let line = match &mac.ident {
                    Some(name) => format!("macro_rules! {name} in {}: {body}", self.crate_path(m)),
                    None => {
                        let name = mac.mac.path.to_token_stream().to_string();
                        if !own.contains(&name) {
                            continue;
                        }
                        format!("macro call in {}: {name}! {{ {body} }}", self.crate_path(m))
                    }
                };
                lines.insert(line);
            }
        }
        let mut sorted: Vec<String> = lines.into_iter().collect();
        sorted.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)).then(a.cmp(b)));
        sorted.join("\n") + "\n"
    }
}

/// Sort by the path a line is about, so an item's members (fields, variants, methods, then
/// trait impls) follow it, and the macro lines come last.
fn sort_key(line: &str) -> String {
    let path_at = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '.'))
            .collect::<String>()
            .trim_end_matches(':')
            .to_owned()
    };
    if line.starts_with("macro") {
        return format!("~{line}");
    }
    if line.contains("impl")
        && let Some(i) = line.find(" for ralio::")
    {
        return format!("{}::~impl", path_at(&line[i + 5..]));
    }
    line.find("ralio::")
        .map(|i| path_at(&line[i..]))
        .unwrap_or_default()
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn flatten_use(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            let name = if n.ident == "self" {
                prefix.last().cloned()
            } else {
                Some(n.ident.to_string())
            };
            out.push((path, name));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            if r.rename != "_" {
                out.push((path, Some(r.rename.to_string())));
            }
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), None)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn item_name(item: &Item) -> Option<String> {
    Some(match item {
        Item::Const(i) => i.ident.to_string(),
        Item::Enum(i) => i.ident.to_string(),
        Item::Fn(i) => i.sig.ident.to_string(),
        Item::Static(i) => i.ident.to_string(),
        Item::Struct(i) => i.ident.to_string(),
        Item::Trait(i) => i.ident.to_string(),
        Item::TraitAlias(i) => i.ident.to_string(),
        Item::Type(i) => i.ident.to_string(),
        Item::Union(i) => i.ident.to_string(),
        Item::Macro(i) if is_exported_macro(i) => i.ident.as_ref()?.to_string(),
        _ => return None,
    })
}

fn is_exported_macro(m: &syn::ItemMacro) -> bool {
    m.attrs.iter().any(|a| a.path().is_ident("macro_export"))
}

fn is_public(item: &Item) -> bool {
    let vis = match item {
        Item::Const(i) => &i.vis,
        Item::Enum(i) => &i.vis,
        Item::Fn(i) => &i.vis,
        Item::Static(i) => &i.vis,
        Item::Struct(i) => &i.vis,
        Item::Trait(i) => &i.vis,
        Item::TraitAlias(i) => &i.vis,
        Item::Type(i) => &i.vis,
        Item::Union(i) => &i.vis,
        Item::Macro(i) => return is_exported_macro(i),
        _ => return false,
    };
    matches!(vis, Visibility::Public(_))
}

/// `#[cfg(test)]`, `#[cfg(doctest)]`: not part of the built crate.
fn is_test_only(attrs: &[Attribute]) -> bool {
    cfg_strings(attrs)
        .iter()
        .any(|c| c == "test" || c == "doctest")
}

fn cfg_strings(attrs: &[Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .filter_map(|a| a.meta.require_list().ok())
        .map(|l| flat(&l.tokens.to_string()))
        .collect()
}

fn cfg_prefix(cfgs: &[String]) -> String {
    let mut unique: Vec<&String> = Vec::new();
    for c in cfgs {
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    unique.iter().map(|c| format!("#[cfg({c})] ")).collect()
}

/// `#[derive]`, `#[non_exhaustive]`, `#[deprecated]`, `#[repr]`, `#[must_use]`: attributes
/// that are part of the contract.
fn marks(attrs: &[Attribute]) -> String {
    let mut out = String::new();
    for a in attrs {
        for name in ["derive", "non_exhaustive", "deprecated", "repr", "must_use"] {
            if a.path().is_ident(name) {
                out.push_str(&format!("#[{}] ", tokens_text(&a.meta.to_token_stream())));
            }
        }
    }
    out
}

/// Tokens on one line, with doc comments left out.
fn flat_tokens(tokens: &proc_macro2::TokenStream) -> String {
    use proc_macro2::TokenTree;
    let mut kept = proc_macro2::TokenStream::new();
    let mut iter = tokens.clone().into_iter().peekable();
    while let Some(tt) = iter.next() {
        if let TokenTree::Punct(p) = &tt
            && p.as_char() == '#'
            && let Some(TokenTree::Group(g)) = iter.peek()
            && g.to_string().starts_with("[doc")
        {
            iter.next();
            continue;
        }
        let tt = match tt {
            TokenTree::Group(g) => {
                let inner = flat_tokens(&g.stream());
                let stream: proc_macro2::TokenStream = inner.parse().unwrap_or_default();
                TokenTree::Group(proc_macro2::Group::new(g.delimiter(), stream))
            }
            other => other,
        };
        kept.extend([tt]);
    }
    tokens_text(&kept)
}

/// Tokens as text on one line, without the spaces `TokenStream`'s `Display` puts around
/// punctuation.
fn tokens_text(tokens: &proc_macro2::TokenStream) -> String {
    flat(&tokens.to_string())
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" ::", "::")
        .replace(" ,", ",")
        .replace(" ;", ";")
        .replace(" (", "(")
}

/// Collapses whitespace and the line breaks of pretty-printed code.
fn flat(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(",)", ")")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(",>", ">")
}

/// Pretty-prints one item on one line.
fn render(item: Item) -> String {
    let file = syn::File {
        shebang: None,
        attrs: Vec::new(),
        items: vec![item],
    };
    flat(&prettyplease::unparse(&file))
}

fn render_type(ty: &syn::Type) -> String {
    let item: Item = syn::parse_quote!(type __T = #ty;);
    let text = render(item);
    let (_, ty) = text.split_once(" = ").expect("a type alias");
    ty.trim_end_matches(';').to_owned()
}

fn render_sig(sig: &syn::Signature, path: &str) -> String {
    let mut sig = sig.clone();
    sig.ident = syn::Ident::new("__NAME__", proc_macro2::Span::call_site());
    let item = Item::Fn(syn::ItemFn {
        attrs: Vec::new(),
        vis: Visibility::Inherited,
        sig,
        block: Box::new(syn::parse_quote!({})),
    });
    let text = render(item);
    text.trim_end_matches("{}")
        .trim_end()
        .trim_end_matches(',')
        .replace("__NAME__", path)
}

fn named(text: String, ident: &syn::Ident, path: &str) -> String {
    text.replacen(&format!(" {ident}"), &format!(" {path}"), 1)
}

fn describe_item(item: &Item, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    match item {
        Item::Fn(f) => out.push(format!(
            "{}pub {}",
            marks(&f.attrs),
            render_sig(&f.sig, path)
        )),
        Item::Const(c) => out.push(format!(
            "{}pub const {path}: {}",
            marks(&c.attrs),
            render_type(&c.ty)
        )),
        Item::Static(s) => out.push(format!(
            "{}pub static {path}: {}",
            marks(&s.attrs),
            render_type(&s.ty)
        )),
        Item::Type(t) => {
            let mut t = t.clone();
            t.attrs.clear();
            out.push(named(
                render(Item::Type(t.clone()))
                    .trim_end_matches(';')
                    .to_owned(),
                &t.ident,
                path,
            ));
        }
        Item::Struct(s) => {
            let mut head = s.clone();
            head.attrs.clear();
            let tuple_fields: Vec<String>;
            match &s.fields {
                syn::Fields::Named(fields) => {
                    head.fields = syn::Fields::Unit;
                    let hidden = fields
                        .named
                        .iter()
                        .any(|f| !matches!(f.vis, Visibility::Public(_)));
                    let text = named(render(Item::Struct(head.clone())), &s.ident, path);
                    let text = text.trim_end_matches(';').to_owned();
                    out.push(format!(
                        "{}{text}{}",
                        marks(&s.attrs),
                        if hidden { " { private fields }" } else { "" }
                    ));
                    for f in &fields.named {
                        if matches!(f.vis, Visibility::Public(_)) {
                            let name = f
                                .ident
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default();
                            out.push(format!(
                                "{}pub {path}.{name}: {}",
                                marks(&f.attrs),
                                render_type(&f.ty)
                            ));
                        }
                    }
                }
                syn::Fields::Unnamed(fields) => {
                    tuple_fields = fields
                        .unnamed
                        .iter()
                        .map(|f| match f.vis {
                            Visibility::Public(_) => format!("pub {}", render_type(&f.ty)),
                            _ => "_".to_owned(),
                        })
                        .collect();
                    head.fields = syn::Fields::Unit;
                    let text = named(render(Item::Struct(head.clone())), &s.ident, path);
                    let text = text.trim_end_matches(';');
                    // Generics and a where clause stay in place; the fields follow the name.
                    out.push(format!(
                        "{}{text}({})",
                        marks(&s.attrs),
                        tuple_fields.join(", ")
                    ));
                }
                syn::Fields::Unit => {
                    out.push(format!(
                        "{}{}",
                        marks(&s.attrs),
                        named(render(Item::Struct(head)), &s.ident, path).trim_end_matches(';')
                    ));
                }
            }
        }
        Item::Enum(e) => {
            let mut head = e.clone();
            head.attrs.clear();
            head.variants.clear();
            let text = named(render(Item::Enum(head)), &e.ident, path);
            out.push(format!(
                "{}{}",
                marks(&e.attrs),
                text.trim_end_matches("{}").trim_end()
            ));
            for v in &e.variants {
                let fields = match &v.fields {
                    syn::Fields::Named(f) => format!(
                        " {{ {} }}",
                        f.named
                            .iter()
                            .map(|f| format!(
                                "{}: {}",
                                f.ident
                                    .as_ref()
                                    .map(ToString::to_string)
                                    .unwrap_or_default(),
                                render_type(&f.ty)
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    syn::Fields::Unnamed(f) => format!(
                        "({})",
                        f.unnamed
                            .iter()
                            .map(|f| render_type(&f.ty))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    syn::Fields::Unit => String::new(),
                };
                out.push(format!("{}{path}::{}{fields}", marks(&v.attrs), v.ident));
            }
        }
        Item::Trait(t) => {
            let mut head = t.clone();
            head.attrs.clear();
            head.items.clear();
            let text = named(render(Item::Trait(head)), &t.ident, path);
            out.push(format!(
                "{}{}",
                marks(&t.attrs),
                text.trim_end_matches("{}").trim_end()
            ));
            for ti in &t.items {
                match ti {
                    syn::TraitItem::Fn(f) => out.push(format!(
                        "{}{}{}",
                        marks(&f.attrs),
                        render_sig(&f.sig, &format!("{path}::{}", f.sig.ident)),
                        if f.default.is_some() {
                            " (provided)"
                        } else {
                            ""
                        }
                    )),
                    syn::TraitItem::Type(ty) => {
                        let mut ty = ty.clone();
                        ty.attrs.clear();
                        out.push(format!(
                            "{path}::{}",
                            flat(&ty.to_token_stream().to_string())
                        ));
                    }
                    syn::TraitItem::Const(c) => {
                        out.push(format!("const {path}::{}: {}", c.ident, render_type(&c.ty)));
                    }
                    other => out.push(format!(
                        "{path}: {}",
                        flat(&other.to_token_stream().to_string())
                    )),
                }
            }
        }
        Item::Macro(m) => out.push(format!("macro {path}! {}", flat_tokens(&m.mac.tokens))),
        other => out.push(format!(
            "{path}: {}",
            flat(&other.to_token_stream().to_string())
        )),
    }
    out
}

/// The public members of an impl block of a public type at `path` (`<dyn path>` for an
/// inherent impl on a trait object).
fn describe_impl(imp: &syn::ItemImpl, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let dyn_path;
    let path = if matches!(&*imp.self_ty, syn::Type::TraitObject(_)) {
        dyn_path = format!("<dyn {path}>");
        dyn_path.as_str()
    } else {
        path
    };
    if imp.trait_.is_some() {
        // The header as written, the type named by its public path (its generics kept).
        let mut head = imp.clone();
        head.attrs.clear();
        head.items.clear();
        let header = render(Item::Impl(head));
        let header = header.trim_end_matches("{}").trim_end();
        let self_ty = render_type(&imp.self_ty);
        let shown = match self_ty.find('<') {
            Some(i) => format!("{path}{}", &self_ty[i..]),
            None => path.to_owned(),
        };
        let header = match header.rfind(&format!(" for {self_ty}")) {
            Some(i) => format!(
                "{} for {shown}{}",
                &header[..i],
                &header[i + 5 + self_ty.len()..]
            ),
            None => header.to_owned(),
        };
        out.push(header);
        return out;
    }
    for it in &imp.items {
        match it {
            syn::ImplItem::Fn(f) if matches!(f.vis, Visibility::Public(_)) => out.push(format!(
                "{}pub {}",
                marks(&f.attrs),
                render_sig(&f.sig, &format!("{path}::{}", f.sig.ident))
            )),
            syn::ImplItem::Const(c) if matches!(c.vis, Visibility::Public(_)) => out.push(format!(
                "pub const {path}::{}: {}",
                c.ident,
                render_type(&c.ty)
            )),
            _ => {}
        }
    }
    out
}

/// The path of a type as written (`Foo<'a>` → `Foo`), for finding its definition.
fn type_path(ty: &syn::Type) -> Option<Vec<String>> {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => Some(
            p.path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect(),
        ),
        syn::Type::Group(g) => type_path(&g.elem),
        syn::Type::Paren(p) => type_path(&p.elem),
        // `impl dyn Trait { … }`: inherent methods of the trait object, listed under the trait.
        syn::Type::TraitObject(t) => t.bounds.iter().find_map(|bound| match bound {
            syn::TypeParamBound::Trait(tb) => Some(
                tb.path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect(),
            ),
            _ => None,
        }),
        _ => None,
    }
}
