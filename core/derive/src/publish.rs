//! Parsing `#[derive(Publish)]` and its `#[publish(...)]` attributes.

use syn::punctuated::Punctuated;
use syn::{Attribute, DeriveInput, Ident, LitStr, Path, Token};

use crate::attrs::{flag, for_each_attr, named_fields, path_text};
use crate::spec::{
    check_to_parent, check_unique, default_crate, non_empty, parse_crate, set_once, unraw, IdSpec,
    PublishedAttr, PublisherSpec, Source,
};
use crate::types::{embedded_json_type, json_type};

const STRUCT_OPTIONS: &str = "to, parent, ephemeral, model, virtual, mock, internal, crate";
const FIELD_OPTIONS: &str = "embeds, id (or a bare `#[publish]`)";

/// Struct-level `#[publish(...)]` options.
#[derive(Default)]
struct StructOptions {
    to: Option<LitStr>,
    parent: Option<Path>,
    ephemeral: Option<()>,
    model: Option<LitStr>,
    virtuals: Vec<Ident>,
    mock: Option<()>,
    internal: Option<()>,
    krate: Option<Path>,
}

/// Field-level `#[publish(...)]` flags.
#[derive(Default)]
struct FieldOptions {
    published: bool,
    embeds: Option<()>,
    id: Option<()>,
}

fn struct_options(input: &DeriveInput) -> syn::Result<StructOptions> {
    let mut o = StructOptions::default();
    for_each_attr(
        &input.attrs,
        "publish",
        || {},
        |meta| {
            let span = syn::spanned::Spanned::span(&meta.path);
            let key = meta.path.get_ident().map(unraw).unwrap_or_default();
            match key.as_str() {
                "to" => {
                    let lit = non_empty("to", meta.value()?.parse()?)?;
                    set_once(&mut o.to, lit, "publish option `to`", span)
                }
                "parent" => {
                    let path = meta.value()?.parse()?;
                    set_once(&mut o.parent, path, "publish option `parent`", span)
                }
                "ephemeral" => flag(&meta, &mut o.ephemeral, "publish option `ephemeral`"),
                "model" => {
                    let lit = non_empty("model", meta.value()?.parse()?)?;
                    set_once(&mut o.model, lit, "publish option `model`", span)
                }
                "virtual" => {
                    let content;
                    syn::parenthesized!(content in meta.input);
                    let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    o.virtuals.extend(names);
                    Ok(())
                }
                "mock" => flag(&meta, &mut o.mock, "publish option `mock`"),
                "internal" => flag(&meta, &mut o.internal, "publish option `internal`"),
                "crate" => {
                    let path = parse_crate(meta.value()?)?;
                    set_once(&mut o.krate, path, "publish option `crate`", span)
                }
                _ => Err(meta.error(format!(
                    "unknown publish option `{}`; expected one of: {STRUCT_OPTIONS}",
                    path_text(&meta.path)
                ))),
            }
        },
    )?;
    Ok(o)
}

fn field_options(attrs: &[Attribute]) -> syn::Result<FieldOptions> {
    let mut o = FieldOptions::default();
    let mut published = false;
    for_each_attr(
        attrs,
        "publish",
        || published = true,
        |meta| {
            if meta.path.is_ident("embeds") {
                flag(&meta, &mut o.embeds, "field option `embeds`")
            } else if meta.path.is_ident("id") {
                flag(&meta, &mut o.id, "field option `id`")
            } else {
                Err(meta.error(format!(
                    "unknown publish field option `{}`; expected one of: {FIELD_OPTIONS}",
                    path_text(&meta.path)
                )))
            }
        },
    )?;
    o.published = published;
    Ok(o)
}

/// Parses a `#[derive(Publish)]` input into a [`PublisherSpec`].
pub(crate) fn parse(input: &DeriveInput) -> syn::Result<PublisherSpec> {
    let fields = named_fields(input, "Publish")?;
    let options = struct_options(input)?;
    let ident = &input.ident;
    let ephemeral = options.ephemeral.is_some();
    check_to_parent(options.to.as_ref(), options.parent.as_ref())?;

    let mut attributes = Vec::new();
    let mut marked_id: Option<IdSpec> = None;
    let mut default_id: Option<IdSpec> = None;
    for field in &fields.named {
        let Some(field_ident) = field.ident.clone() else {
            continue;
        };
        let flags = field_options(&field.attrs)?;
        if flags.id.is_some() {
            if flags.embeds.is_some() {
                return Err(syn::Error::new_spanned(
                    &field_ident,
                    "a field cannot be both `id` and `embeds`: the id must be a string or an integer",
                ));
            }
            if marked_id.is_some() {
                return Err(syn::Error::new_spanned(
                    &field_ident,
                    "only one field may be marked #[publish(id)]",
                ));
            }
            marked_id = Some(IdSpec {
                field: field_ident.clone(),
                ty: Some(field.ty.clone()),
            });
        }
        if unraw(&field_ident) == "id" {
            default_id = Some(IdSpec {
                field: field_ident.clone(),
                ty: Some(field.ty.clone()),
            });
        }
        if flags.embeds.is_some() {
            attributes.push(PublishedAttr {
                ident: field_ident,
                source: Source::Embedded,
                json_type: embedded_json_type(&field.ty),
                ty: Some(field.ty.clone()),
            });
        } else if flags.published {
            attributes.push(PublishedAttr {
                ident: field_ident,
                source: Source::Field,
                json_type: json_type(&field.ty),
                ty: Some(field.ty.clone()),
            });
        }
    }
    attributes.extend(options.virtuals.into_iter().map(|ident| PublishedAttr {
        ident,
        source: Source::Virtual,
        json_type: "any".into(),
        ty: None,
    }));
    check_unique(&ident.to_string(), attributes.iter().map(|a| &a.ident))?;

    let id = marked_id.or(default_id);
    if id.is_none() && !ephemeral {
        return Err(syn::Error::new_spanned(
            ident,
            format!("{ident} has no id field: add an `id` field, or mark the field holding the id with #[publish(id)] (only #[publish(ephemeral)] models may have no id)"),
        ));
    }

    Ok(PublisherSpec {
        krate: options.krate.unwrap_or_else(default_crate),
        target: ident.clone().into(),
        model: options
            .model
            .unwrap_or_else(|| LitStr::new(&unraw(ident), ident.span())),
        to: options.to,
        parent: options.parent,
        ephemeral,
        id,
        attributes,
        mock: options.mock.is_some(),
        internal: options.internal.is_some(),
        sea_orm: input
            .attrs
            .iter()
            .any(|attr| attr.path().is_ident("sea_orm")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn error(input: DeriveInput) -> String {
        match parse(&input) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_everything() {
        let spec = parse(&parse_quote! {
            #[publish(to = "crowdtap/user", model = "Person", virtual(full_name, r#type))]
            #[publish(crate = "crate::facade")]
            struct User {
                #[publish(id)]
                key: String,
                #[publish]
                name: Option<String>,
                #[publish(embeds)]
                addresses: Vec<Address>,
                local: bool,
            }
        })
        .unwrap();
        assert_eq!(spec.model.value(), "Person");
        assert_eq!(spec.to.unwrap().value(), "crowdtap/user");
        assert_eq!(path_text(&spec.krate), "crate::facade");
        assert_eq!(spec.id.unwrap().field, "key");
        let attrs: Vec<_> = spec
            .attributes
            .iter()
            .map(|a| (unraw(&a.ident), a.source, a.json_type.clone()))
            .collect();
        assert_eq!(
            attrs,
            vec![
                ("name".into(), Source::Field, "string?".into()),
                ("addresses".into(), Source::Embedded, "array".into()),
                ("full_name".into(), Source::Virtual, "any".into()),
                ("type".into(), Source::Virtual, "any".into()),
            ]
        );
    }

    #[test]
    fn defaults() {
        let spec = parse(&parse_quote! {
            #[publish(parent = crate::User)]
            struct Member { id: i64, #[publish] points: u32 }
        })
        .unwrap();
        assert_eq!(spec.model.value(), "Member");
        assert!(spec.parent.is_some());
        assert!(!spec.ephemeral);
        assert_eq!(path_text(&spec.krate), "promiscuous");
        assert_eq!(spec.id.unwrap().field, "id");
    }

    #[test]
    fn mock_flag() {
        let spec = parse(&parse_quote! {
            #[publish(to = "crowdtap/user", mock)]
            struct User { id: i64, #[publish] name: String }
        })
        .unwrap();
        assert!(spec.mock);
        let spec = parse(&parse_quote!(
            struct User {
                id: i64,
            }
        ))
        .unwrap();
        assert!(!spec.mock);
        assert!(!spec.internal);
    }

    #[test]
    fn internal_flag() {
        let spec = parse(&parse_quote! {
            #[publish(to = "suite/item", internal)]
            struct Item { id: i64, #[publish] name: String }
        })
        .unwrap();
        assert!(spec.internal && !spec.mock);
    }

    #[test]
    fn ephemeral_without_id() {
        let spec = parse(&parse_quote! {
            #[publish(ephemeral)]
            struct Event { #[publish] name: String }
        })
        .unwrap();
        assert!(spec.ephemeral);
        assert!(spec.id.is_none());
    }

    #[test]
    fn errors() {
        let cases: Vec<(DeriveInput, &str)> = vec![
            (
                parse_quote!(#[publish(foo)] struct A { id: i64 }),
                "unknown publish option `foo`; expected one of: to, parent, ephemeral, model, virtual, mock, internal, crate",
            ),
            (
                parse_quote!(struct A { #[publish(bar)] id: i64 }),
                "unknown publish field option `bar`; expected one of: embeds, id",
            ),
            (
                parse_quote!(struct A { #[publish] name: String }),
                "A has no id field: add an `id` field, or mark the field holding the id with #[publish(id)]",
            ),
            (
                parse_quote!(struct A<T> { id: T }),
                "does not support generic structs",
            ),
            (parse_quote!(struct A(i64);), "needs a struct with named fields"),
            (parse_quote!(enum A { B }), "not enums"),
            (
                parse_quote!(#[publish(to = "a", to = "b")] struct A { id: i64 }),
                "duplicate publish option `to`",
            ),
            (
                parse_quote!(#[publish(to = "a", parent = B)] struct A { id: i64 }),
                "`to` cannot be combined with `parent`",
            ),
            (
                parse_quote!(#[publish(to = "")] struct A { id: i64 }),
                "`to` must not be empty",
            ),
            (
                parse_quote!(#[publish(virtual(name))] struct A { id: i64, #[publish] name: String }),
                "attribute `name` is declared twice on A",
            ),
            (
                parse_quote!(struct A { #[publish(id)] a: i64, #[publish(id)] b: i64 }),
                "only one field may be marked #[publish(id)]",
            ),
            (
                parse_quote!(struct A { #[publish(id, embeds)] a: B }),
                "cannot be both `id` and `embeds`",
            ),
            (
                parse_quote!(#[publish = "x"] struct A { id: i64 }),
                "expected `#[publish]` or `#[publish(...)]`",
            ),
            (
                parse_quote!(#[publish(crate = "not a path")] struct A { id: i64 }),
                "`crate` must be a path",
            ),
            (
                parse_quote!(#[publish(to = 3)] struct A { id: i64 }),
                "expected string literal",
            ),
        ];
        for (input, expected) in cases {
            let message = error(input);
            assert!(
                message.contains(expected),
                "expected {expected:?} in {message:?}"
            );
        }
    }
}
