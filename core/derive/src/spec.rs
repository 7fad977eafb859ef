//! The intermediate form shared by the derives and `define!`: both parse into
//! these structs, then [`crate::codegen`] turns them into impls.

use proc_macro2::Span;
use syn::{Ident, LitStr, Path, Type};

/// Where a published attribute's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A serialised field.
    Field,
    /// A method of the model.
    Virtual,
    /// An embedded published model.
    Embedded,
}

/// One published attribute.
#[derive(Debug, Clone)]
pub(crate) struct PublishedAttr {
    /// The field or method; its unraw name is the name on the wire.
    pub ident: Ident,
    /// Where the value comes from.
    pub source: Source,
    /// The guessed JSON type.
    pub json_type: String,
}

/// The id field of a publisher.
#[derive(Debug, Clone)]
pub(crate) struct IdSpec {
    /// The field holding the id.
    pub field: Ident,
    /// Its type, when known (derives); `define!` infers it from the field.
    pub ty: Option<Type>,
}

/// Everything needed to generate a `Publish` impl.
#[derive(Debug, Clone)]
pub(crate) struct PublisherSpec {
    /// The root path of the facade crate (`::promiscuous`).
    pub krate: Path,
    /// The model type.
    pub target: Path,
    /// The type name on the wire.
    pub model: LitStr,
    /// Explicit endpoint.
    pub to: Option<LitStr>,
    /// Parent publisher type.
    pub parent: Option<Path>,
    /// Ephemeral model.
    pub ephemeral: bool,
    /// The id field; `None` only for ephemerals.
    pub id: Option<IdSpec>,
    /// Published attributes, in order.
    pub attributes: Vec<PublishedAttr>,
}

/// One subscribed attribute.
#[derive(Debug, Clone)]
pub(crate) struct SubscribedAttr {
    /// The field; its unraw name is the name on the wire.
    pub ident: Ident,
    /// Whether it holds embedded documents.
    pub embedded: bool,
}

/// Everything needed to generate a `Subscribe` impl.
#[derive(Debug, Clone)]
pub(crate) struct SubscriberSpec {
    /// The root path of the facade crate (`::promiscuous`).
    pub krate: Path,
    /// The model type.
    pub target: Path,
    /// The Rust type name.
    pub model: LitStr,
    /// The published type name (`as`).
    pub as_name: Option<LitStr>,
    /// The endpoint pattern (`from`).
    pub from: Option<LitStr>,
    /// Parent subscriber type.
    pub parent: Option<Path>,
    /// The local field holding the publisher's id.
    pub foreign_key: Option<LitStr>,
    /// Observer (stores nothing).
    pub observer: bool,
    /// The user implements `Callbacks` (no empty impl is generated).
    pub user_callbacks: bool,
    /// Subscribed attributes, in order.
    pub attributes: Vec<SubscribedAttr>,
}

/// The default root path of the facade crate.
pub(crate) fn default_crate() -> Path {
    syn::parse_quote!(::promiscuous)
}

/// The name of an identifier without its `r#` prefix.
pub(crate) fn unraw(ident: &Ident) -> String {
    syn::ext::IdentExt::unraw(ident).to_string()
}

/// The model name of a type path: its last segment, unraw.
pub(crate) fn model_name(path: &Path) -> syn::Result<LitStr> {
    match path.segments.last() {
        Some(segment) => Ok(LitStr::new(&unraw(&segment.ident), segment.ident.span())),
        None => Err(syn::Error::new(Span::call_site(), "expected a type name")),
    }
}

/// Fails when a string option is empty.
pub(crate) fn non_empty(option: &str, lit: LitStr) -> syn::Result<LitStr> {
    if lit.value().trim().is_empty() {
        Err(syn::Error::new(
            lit.span(),
            format!("`{option}` must not be empty"),
        ))
    } else {
        Ok(lit)
    }
}

/// Records that an option is set; fails on its second occurrence.
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    what: &str,
    span: Span,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(span, format!("duplicate {what}")));
    }
    *slot = Some(value);
    Ok(())
}

/// Fails when two attributes share a name on the wire.
pub(crate) fn check_unique<'a>(
    model: &str,
    names: impl IntoIterator<Item = &'a Ident>,
) -> syn::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for ident in names {
        let name = unraw(ident);
        if !seen.insert(name.clone()) {
            return Err(syn::Error::new(
                ident.span(),
                format!("attribute `{name}` is declared twice on {model}; each attribute may appear once (as a field, an embedded model or a virtual attribute)"),
            ));
        }
    }
    Ok(())
}

/// Rejects a `to` on a child model, which publishes to its parent's endpoint.
pub(crate) fn check_to_parent(to: Option<&LitStr>, parent: Option<&Path>) -> syn::Result<()> {
    match (to, parent) {
        (Some(to), Some(_)) => Err(syn::Error::new(
            to.span(),
            "`to` cannot be combined with `parent`: a child model publishes to its parent's endpoint; put `to` on the root model",
        )),
        _ => Ok(()),
    }
}

/// Parses the value of a `crate` option: a string holding a path, or a path.
pub(crate) fn parse_crate(input: syn::parse::ParseStream) -> syn::Result<Path> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        lit.parse::<Path>().map_err(|_| {
            syn::Error::new(
                lit.span(),
                format!(
                    "`crate` must be a path such as \"::promiscuous\", got {:?}",
                    lit.value()
                ),
            )
        })
    } else {
        input.parse::<Path>()
    }
}
