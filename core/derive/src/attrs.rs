//! Helpers shared by the derive parsers: attribute walking, flags, input shape.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Data, DeriveInput, Fields, Meta, Path, Token};

use crate::spec::{set_once, unraw};

/// Calls `each` for every `#[name(...)]` list; a bare `#[name]` calls `bare`.
pub(crate) fn for_each_attr(
    attrs: &[Attribute],
    name: &str,
    mut bare: impl FnMut(),
    mut each: impl FnMut(ParseNestedMeta) -> syn::Result<()>,
) -> syn::Result<()> {
    for attr in attrs.iter().filter(|a| a.path().is_ident(name)) {
        match &attr.meta {
            Meta::Path(_) => bare(),
            Meta::List(_) => attr.parse_nested_meta(&mut each)?,
            Meta::NameValue(nv) => {
                return Err(syn::Error::new_spanned(
                    nv,
                    format!("expected `#[{name}]` or `#[{name}(...)]`, not `#[{name} = ...]`"),
                ))
            }
        }
    }
    Ok(())
}

/// Parses a flag option (no value), failing on a value or a repeat.
pub(crate) fn flag(meta: &ParseNestedMeta, slot: &mut Option<()>, what: &str) -> syn::Result<()> {
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        return Err(meta.error(format!(
            "`{}` is a flag and takes no value: write `{}` alone",
            path_text(&meta.path),
            path_text(&meta.path)
        )));
    }
    set_once(slot, (), what, syn::spanned::Spanned::span(&meta.path))
}

/// The text of an option path, for error messages.
pub(crate) fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| unraw(&s.ident)).collect();
    segments.join("::")
}

/// Fails on generics and on anything but a struct with named fields.
pub(crate) fn named_fields<'a>(
    input: &'a DeriveInput,
    derive: &str,
) -> syn::Result<&'a syn::FieldsNamed> {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            format!("#[derive({derive})] does not support generic structs: definitions are static and registered once per type; define a concrete struct (or a newtype around a concrete instantiation)"),
        ));
    }
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => Ok(fields),
            _ => Err(syn::Error::new_spanned(
                &input.ident,
                format!("#[derive({derive})] needs a struct with named fields; tuple and unit structs have no attribute names"),
            )),
        },
        Data::Enum(data) => Err(syn::Error::new(
            data.enum_token.span,
            format!("#[derive({derive})] supports only structs with named fields, not enums"),
        )),
        Data::Union(data) => Err(syn::Error::new(
            data.union_token.span,
            format!("#[derive({derive})] supports only structs with named fields, not unions"),
        )),
    }
}
