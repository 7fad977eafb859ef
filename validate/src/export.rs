//! Exporting publisher definitions as a Rust source file of mock publishers.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use promiscuous_core::model::{AttributeDef, AttributeSource, PublisherDef, PublisherRegistration};

/// The environment variable that makes [`publishers`](crate::publishers)
/// rewrite the mocks file instead of comparing it: `1` or `true`.
pub const ENV_WRITE_MOCKS: &str = "PROMISCUOUS_WRITE_MOCKS";

/// The definitions of every publisher linked into this binary, mocks and
/// promiscuous's own test models left out, sorted by model name.
pub fn published_definitions() -> Vec<&'static PublisherDef> {
    PublisherRegistration::all()
        .into_iter()
        .filter(|reg| !reg.mock && !reg.internal)
        .map(|reg| (reg.definition)())
        .collect()
}

/// The publisher definitions of this binary (mocks left out) as a Rust source
/// file of mock publishers for app `app`; see [`mocks_source`].
pub fn export_mocks(app: &str) -> String {
    mocks_source(app, &published_definitions())
}

/// Writes [`export_mocks`]`(app)` to `path`, creating its directory if needed.
pub fn write_mocks(app: &str, path: impl AsRef<Path>) -> io::Result<()> {
    write_file(path.as_ref(), &export_mocks(app))
}

/// Writes `text` to `path` through a temporary file renamed over it, so a
/// concurrent reader sees the old or the new file, never half of one.
pub(crate) fn write_file(path: &Path, text: &str) -> io::Result<()> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// The app a mocks file is for: the value of its `pub const APP: &str = "…";`.
pub fn mocks_app(source: &str) -> Option<String> {
    source.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("pub const APP: &str = \"")?
            .strip_suffix("\";")?;
        Some(value.to_owned())
    })
}

/// Rust keywords, which need `r#` as field names.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// Names that cannot be raw identifiers.
const RESERVED: &[&str] = &["crate", "self", "Self", "super", "_"];

/// A field name for an attribute: itself, or `r#name` for a keyword.
fn field_ident(name: &str) -> String {
    if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

/// A struct name for a model name: its letters, digits and `_`, never a keyword.
fn type_ident(model: &str) -> String {
    let mut ident: String = model
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, 'M');
    }
    if KEYWORDS.contains(&ident.as_str()) || RESERVED.contains(&ident.as_str()) {
        ident.push('_');
    }
    ident
}

/// The Rust type of an attribute of JSON type `json_type`.
fn rust_type(json_type: &str) -> String {
    let (base, nullable) = match json_type.strip_suffix('?') {
        Some(base) => (base, true),
        None => (json_type, false),
    };
    let ty = match base {
        "string" => "String",
        "integer" => "i64",
        "number" => "f64",
        "boolean" => "bool",
        "array" => "Vec<::serde_json::Value>",
        "object" => "::serde_json::Map<String, ::serde_json::Value>",
        _ => return "::serde_json::Value".to_owned(),
    };
    if nullable {
        format!("Option<{ty}>")
    } else {
        ty.to_owned()
    }
}

/// A JSON type in words: `integer?` is "integer or null".
fn describe(json_type: &str) -> String {
    match json_type.strip_suffix('?') {
        Some(base) => format!("{base} or null"),
        None => json_type.to_owned(),
    }
}

/// One mock publisher to write.
struct Node {
    def: &'static PublisherDef,
    ident: String,
    children: Vec<usize>,
}

/// Everything the file holds, in file order.
struct Plan {
    nodes: Vec<Node>,
    /// Node indices in file order: each root, then its descendants.
    order: Vec<usize>,
}

impl Plan {
    fn index_of(&self, def: &PublisherDef) -> Option<usize> {
        self.nodes.iter().position(|n| std::ptr::eq(n.def, def))
    }

    fn ident_of(&self, def: &PublisherDef) -> Option<&str> {
        self.index_of(def).map(|i| self.nodes[i].ident.as_str())
    }
}

/// The definition of the model `attribute` embeds, when its registration knows it.
fn embedded_definition(
    declared_by: &PublisherDef,
    attribute: &str,
) -> Option<&'static PublisherDef> {
    PublisherRegistration::of(declared_by)?.embedded_definition(attribute)
}

/// The ancestor (or `def` itself) that first declares `attribute`, root first.
fn declaring(def: &'static PublisherDef, attribute: &str) -> &'static PublisherDef {
    let mut chain = vec![def];
    while let Some(parent) = chain.last().and_then(|d| d.parent).map(|parent| parent()) {
        chain.push(parent);
    }
    chain
        .into_iter()
        .rev()
        .find(|d| d.attributes.iter().any(|a| a.name == attribute))
        .unwrap_or(def)
}

/// A stable sort key for a definition, independent of link order.
fn sort_key(def: &PublisherDef, app: &str) -> (String, String, String) {
    let signature = format!(
        "{} {} {:?}",
        def.ephemeral,
        def.id_kind,
        def.all_attributes()
            .iter()
            .map(|a| (a.name, a.json_type, format!("{:?}", a.source)))
            .collect::<Vec<_>>()
    );
    (def.model.to_owned(), def.endpoint(app), signature)
}

fn plan(app: &str, definitions: &[&'static PublisherDef]) -> Plan {
    // Every given definition, its ancestors and the models it embeds.
    let mut all: Vec<&'static PublisherDef> = Vec::new();
    let mut pending: Vec<&'static PublisherDef> = definitions.to_vec();
    while let Some(def) = pending.pop() {
        if all.iter().any(|d| std::ptr::eq(*d, def)) {
            continue;
        }
        all.push(def);
        if let Some(parent) = def.parent {
            pending.push(parent());
        }
        for attr in def.attributes {
            if attr.source == AttributeSource::Embedded {
                pending.extend(embedded_definition(def, attr.name));
            }
        }
    }
    all.sort_by_cached_key(|def| sort_key(def, app));

    let mut nodes: Vec<Node> = all
        .iter()
        .map(|def| Node {
            def,
            ident: String::new(),
            children: Vec::new(),
        })
        .collect();
    let position = |def: &PublisherDef| all.iter().position(|d| std::ptr::eq(*d, def));
    let mut roots = Vec::new();
    for (index, def) in all.iter().enumerate() {
        match def.parent.and_then(|parent| position(parent())) {
            Some(parent) => nodes[parent].children.push(index),
            None => roots.push(index),
        }
    }
    // Depth first, in sorted order (children were pushed in sorted order).
    let mut order = Vec::with_capacity(nodes.len());
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(index) = stack.pop() {
        order.push(index);
        stack.extend(nodes[index].children.iter().rev().copied());
    }
    let mut used = HashSet::new();
    for &index in &order {
        let base = type_ident(nodes[index].def.model);
        let mut ident = base.clone();
        let mut n = 2;
        while !used.insert(ident.clone()) {
            ident = format!("{base}_{n}");
            n += 1;
        }
        nodes[index].ident = ident;
    }
    Plan { nodes, order }
}

/// The id field's type, or `None` for a model without id.
fn id_type(def: &PublisherDef) -> Option<String> {
    let ty = match def.id_kind {
        "none" => return None,
        "integer" => "i64",
        _ => "String",
    };
    Some(if def.ephemeral {
        format!("Option<{ty}>")
    } else {
        ty.to_owned()
    })
}

/// One field of a mock struct.
struct Field {
    doc: String,
    marker: Option<&'static str>,
    ident: String,
    ty: String,
}

/// The field of one published attribute of `def`.
fn attribute_field(plan: &Plan, def: &'static PublisherDef, attr: &AttributeDef) -> Field {
    let origin = declaring(def, attr.name);
    let added = std::ptr::eq(origin, def);
    let embedded = (attr.source == AttributeSource::Embedded)
        .then(|| embedded_definition(origin, attr.name))
        .flatten()
        .and_then(|embedded| plan.ident_of(embedded));
    let typed = embedded.and_then(|ident| match attr.json_type {
        "object" => Some((ident.to_owned(), format!("embedded `{ident}`"))),
        "object?" => Some((
            format!("Option<{ident}>"),
            format!("embedded `{ident}`, or null"),
        )),
        "array" => Some((
            format!("Vec<{ident}>"),
            format!("array of embedded `{ident}`"),
        )),
        _ => None,
    });
    let (ty, described, marker) = match typed {
        // Inherited embedded attributes are declared again: a subclass's
        // inherited fields are read through serde, which would not embed them.
        Some((ty, described)) => (ty, described, Some("#[publish(embeds)]")),
        None => (
            rust_type(attr.json_type),
            describe(attr.json_type),
            added.then_some("#[publish]"),
        ),
    };
    let doc = if added {
        format!("`{}` ({described}).", attr.name)
    } else {
        format!(
            "`{}` ({described}), inherited from `{}`.",
            attr.name, origin.model
        )
    };
    Field {
        doc,
        marker,
        ident: field_ident(attr.name),
        ty,
    }
}

fn render_struct(out: &mut String, plan: &Plan, node: &Node, app: &str) {
    let def = node.def;
    let endpoint = def.endpoint(app);
    let parent = def.parent.map(|parent| parent());
    let kind = if def.ephemeral { "the ephemeral " } else { "" };
    let _ = match parent {
        Some(parent) => writeln!(
            out,
            "/// Mock publisher of {kind}`{}`, a `{}` (`{endpoint}`).",
            def.model, parent.model
        ),
        None => writeln!(
            out,
            "/// Mock publisher of {kind}`{}` (`{endpoint}`).",
            def.model
        ),
    };
    out.push_str("#[rustfmt::skip]\n#[allow(dead_code)]\n");
    out.push_str("#[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize, ::promiscuous::Publish)]\n");
    let mut options = Vec::new();
    match parent.and_then(|parent| plan.ident_of(parent)) {
        Some(parent_ident) => options.push(format!("parent = {parent_ident}")),
        None => options.push(format!("to = {endpoint:?}")),
    }
    if node.ident != def.model {
        options.push(format!("model = {:?}", def.model));
    }
    if def.ephemeral {
        options.push("ephemeral".to_owned());
    }
    options.push("mock".to_owned());
    let _ = writeln!(out, "#[publish({})]", options.join(", "));
    let _ = writeln!(out, "pub struct {} {{", node.ident);

    let mut fields = Vec::new();
    let attributes = def.all_attributes();
    if let Some(ty) = id_type(def) {
        let published_id = attributes.iter().find(|a| a.name == "id");
        let (doc, marker) = match published_id {
            Some(attr) if std::ptr::eq(declaring(def, attr.name), def) => (
                format!("The id ({}), also published as `id`.", def.id_kind),
                Some("#[publish]"),
            ),
            Some(attr) => (
                format!(
                    "The id ({}), also published as `id`, inherited from `{}`.",
                    def.id_kind,
                    declaring(def, attr.name).model
                ),
                None,
            ),
            None if def.ephemeral => (format!("The id ({}), if any.", def.id_kind), None),
            None => (format!("The id ({}).", def.id_kind), None),
        };
        fields.push(Field {
            doc,
            marker,
            ident: "id".to_owned(),
            ty,
        });
    }
    for attr in &attributes {
        if attr.name == "id" && id_type(def).is_some() {
            continue;
        }
        fields.push(attribute_field(plan, def, attr));
    }
    for field in fields {
        let _ = writeln!(out, "    /// {}", field.doc);
        if let Some(marker) = field.marker {
            let _ = writeln!(out, "    {marker}");
        }
        let _ = writeln!(out, "    pub {}: {},", field.ident, field.ty);
    }
    out.push_str("}\n");
}

/// The given publisher definitions (with their ancestors and the models they
/// embed) as a Rust source file of mock publishers for app `app`.
///
/// The file holds items only, so it can be `include!`d or used as a
/// `#[path]` module; it needs `promiscuous`, `serde` (with `derive`) and
/// `serde_json`. It declares `pub const APP`, one struct per publisher, and
/// `pub fn definitions()` listing them:
///
/// - roots get `#[publish(to = "<endpoint>")]`, subclasses
///   `#[publish(parent = Root)]`, ephemerals `ephemeral`, and all of them
///   `mock`, which leaves them out of exports and publisher validation;
/// - the id is `i64` or `String` (`Option` for ephemerals), absent for
///   ephemerals without id;
/// - each published attribute is a field typed from its JSON type (`String`,
///   `i64`, `f64`, `bool`, `Vec<Value>`, `Map<String, Value>`, `Value`,
///   `Option<…>` when nullable); virtual attributes become plain fields;
///   embedded attributes are typed with the embedded model's mock;
/// - a subclass repeats its ancestors' fields and marks `#[publish]` only on
///   what it adds, so attribute order and inheritance are those of the real
///   publisher.
///
/// The output is deterministic: sorted by model name (each root followed by
/// its subclasses), no timestamps, so it can be committed and diffed. Every
/// item is `#[rustfmt::skip]`, so `cargo fmt` in the crate including the file
/// leaves it as exported.
pub fn mocks_source(app: &str, definitions: &[&'static PublisherDef]) -> String {
    let plan = plan(app, definitions);
    let mut out = String::new();
    let _ = write!(
        out,
        "\
// Mock publishers of the `{app}` app: what it publishes, for its subscribers' tests.
//
// Generated by promiscuous, do not edit. Regenerate with
//     PROMISCUOUS_WRITE_MOCKS=1 cargo test
// in the publisher app (its tests call promiscuous::validate::publishers, which
// rewrites this file), or with promiscuous::validate::write_mocks({app:?}, path).
//
// Include it in a subscriber's tests with `#[path = \"…\"] mod {module};` (or
// `include!`); it needs the (dev-)dependencies promiscuous, serde (feature
// `derive`) and serde_json. Send operations with promiscuous::validate::MockPublisher.

/// The publisher app these mocks stand for.
#[rustfmt::skip]
#[allow(dead_code)]
pub const APP: &str = {app:?};
",
        module = type_ident(app).to_lowercase(),
    );
    for &index in &plan.order {
        out.push('\n');
        render_struct(&mut out, &plan, &plan.nodes[index], app);
    }
    out.push_str(
        "\n/// The definitions of the mock publishers above.\n#[rustfmt::skip]\n#[allow(dead_code)]\npub fn definitions() -> Vec<&'static ::promiscuous::core::model::PublisherDef> {\n    vec![\n",
    );
    for &index in &plan.order {
        let _ = writeln!(
            out,
            "        <{} as ::promiscuous::Publish>::definition(),",
            plan.nodes[index].ident
        );
    }
    out.push_str("    ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents() {
        assert_eq!(field_ident("name"), "name");
        assert_eq!(field_ident("type"), "r#type");
        assert_eq!(type_ident("User"), "User");
        assert_eq!(type_ident("crowdtap.User"), "crowdtap_User");
        assert_eq!(type_ident("2fa"), "M2fa");
        assert_eq!(type_ident("Self"), "Self_");
    }

    #[test]
    fn types() {
        assert_eq!(rust_type("string"), "String");
        assert_eq!(rust_type("integer?"), "Option<i64>");
        assert_eq!(rust_type("number"), "f64");
        assert_eq!(rust_type("boolean?"), "Option<bool>");
        assert_eq!(rust_type("array"), "Vec<::serde_json::Value>");
        assert_eq!(
            rust_type("object?"),
            "Option<::serde_json::Map<String, ::serde_json::Value>>"
        );
        assert_eq!(rust_type("any"), "::serde_json::Value");
        assert_eq!(rust_type("something new"), "::serde_json::Value");
    }

    #[test]
    fn reads_the_app() {
        assert_eq!(
            mocks_app("// x\npub const APP: &str = \"crowdtap\";\n"),
            Some("crowdtap".into())
        );
        assert_eq!(mocks_app("const X: &str = \"a\";"), None);
    }
}
