//! Parsing `#[derive(Subscribe)]` and its `#[subscribe(...)]` attributes.

use syn::{DeriveInput, LitStr, Path};

use crate::attrs::{flag, for_each_attr, named_fields, path_text};
use crate::spec::{
    check_unique, default_crate, non_empty, parse_crate, set_once, unraw, SubscribedAttr,
    SubscriberSpec,
};

const STRUCT_OPTIONS: &str =
    "from, as, model, parent, foreign_key, observer, callbacks, internal, crate";
const FIELD_OPTIONS: &str = "embeds (or a bare `#[subscribe]`)";

/// Struct-level `#[subscribe(...)]` options.
#[derive(Default)]
struct StructOptions {
    from: Option<LitStr>,
    as_name: Option<LitStr>,
    model: Option<LitStr>,
    parent: Option<Path>,
    foreign_key: Option<LitStr>,
    observer: Option<()>,
    callbacks: Option<()>,
    internal: Option<()>,
    krate: Option<Path>,
}

fn struct_options(input: &DeriveInput) -> syn::Result<StructOptions> {
    let mut o = StructOptions::default();
    for_each_attr(
        &input.attrs,
        "subscribe",
        || {},
        |meta| {
            let span = syn::spanned::Spanned::span(&meta.path);
            let key = meta.path.get_ident().map(unraw).unwrap_or_default();
            match key.as_str() {
                "from" => {
                    let lit = non_empty("from", meta.value()?.parse()?)?;
                    set_once(&mut o.from, lit, "subscribe option `from`", span)
                }
                "as" => {
                    let lit = non_empty("as", meta.value()?.parse()?)?;
                    set_once(&mut o.as_name, lit, "subscribe option `as`", span)
                }
                "model" => {
                    let lit = non_empty("model", meta.value()?.parse()?)?;
                    set_once(&mut o.model, lit, "subscribe option `model`", span)
                }
                "parent" => {
                    let path = meta.value()?.parse()?;
                    set_once(&mut o.parent, path, "subscribe option `parent`", span)
                }
                "foreign_key" => {
                    let lit = non_empty("foreign_key", meta.value()?.parse()?)?;
                    set_once(
                        &mut o.foreign_key,
                        lit,
                        "subscribe option `foreign_key`",
                        span,
                    )
                }
                "observer" => flag(&meta, &mut o.observer, "subscribe option `observer`"),
                "callbacks" => flag(&meta, &mut o.callbacks, "subscribe option `callbacks`"),
                "internal" => flag(&meta, &mut o.internal, "subscribe option `internal`"),
                "crate" => {
                    let path = parse_crate(meta.value()?)?;
                    set_once(&mut o.krate, path, "subscribe option `crate`", span)
                }
                _ => Err(meta.error(format!(
                    "unknown subscribe option `{}`; expected one of: {STRUCT_OPTIONS}",
                    path_text(&meta.path)
                ))),
            }
        },
    )?;
    Ok(o)
}

/// Parses a `#[derive(Subscribe)]` input into a [`SubscriberSpec`].
pub(crate) fn parse(input: &DeriveInput) -> syn::Result<SubscriberSpec> {
    let fields = named_fields(input, "Subscribe")?;
    let options = struct_options(input)?;
    let ident = &input.ident;

    let mut attributes = Vec::new();
    for field in &fields.named {
        let Some(field_ident) = field.ident.clone() else {
            continue;
        };
        let mut subscribed = false;
        let mut embeds = None;
        for_each_attr(
            &field.attrs,
            "subscribe",
            || subscribed = true,
            |meta| {
                if meta.path.is_ident("embeds") {
                    flag(&meta, &mut embeds, "field option `embeds`")
                } else {
                    Err(meta.error(format!(
                        "unknown subscribe field option `{}`; expected one of: {FIELD_OPTIONS}",
                        path_text(&meta.path)
                    )))
                }
            },
        )?;
        if subscribed || embeds.is_some() {
            attributes.push(SubscribedAttr {
                ident: field_ident,
                embedded: embeds.is_some(),
            });
        }
    }
    check_unique(&ident.to_string(), attributes.iter().map(|a| &a.ident))?;

    Ok(SubscriberSpec {
        krate: options.krate.unwrap_or_else(default_crate),
        target: ident.clone().into(),
        as_name: options.as_name.or_else(|| options.model.clone()),
        model: options
            .model
            .unwrap_or_else(|| LitStr::new(&unraw(ident), ident.span())),
        from: options.from,
        parent: options.parent,
        foreign_key: options.foreign_key,
        observer: options.observer.is_some(),
        user_callbacks: options.callbacks.is_some(),
        internal: options.internal.is_some(),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn parses_everything() {
        let spec = parse(&parse_quote! {
            #[subscribe(from = "crowdtap/user", as = "User", foreign_key = "crowdtap_id")]
            #[subscribe(parent = Base, observer, callbacks, crate = ::facade)]
            struct Profile {
                #[subscribe]
                name: String,
                #[subscribe(embeds)]
                addresses: Vec<Address>,
                local: i32,
            }
        })
        .unwrap();
        assert_eq!(spec.model.value(), "Profile");
        assert_eq!(spec.as_name.unwrap().value(), "User");
        assert_eq!(spec.from.unwrap().value(), "crowdtap/user");
        assert_eq!(spec.foreign_key.unwrap().value(), "crowdtap_id");
        assert!(spec.parent.is_some() && spec.observer && spec.user_callbacks);
        assert_eq!(path_text(&spec.krate), "facade");
        let attrs: Vec<_> = spec
            .attributes
            .iter()
            .map(|a| (unraw(&a.ident), a.embedded))
            .collect();
        assert_eq!(
            attrs,
            vec![("name".to_owned(), false), ("addresses".to_owned(), true)]
        );
    }

    #[test]
    fn defaults() {
        let spec = parse(&parse_quote!(
            struct Mailer {
                #[subscribe]
                user_id: i64,
            }
        ))
        .unwrap();
        assert!(spec.as_name.is_none() && spec.from.is_none() && spec.parent.is_none());
        assert!(!spec.observer && !spec.user_callbacks);
        assert_eq!(path_text(&spec.krate), "promiscuous");
    }

    #[test]
    fn errors() {
        let cases: Vec<(DeriveInput, &str)> = vec![
            (
                parse_quote!(#[subscribe(to = "x")] struct A {}),
                "unknown subscribe option `to`; expected one of: from, as, model, parent, foreign_key, observer, callbacks, internal, crate",
            ),
            (
                parse_quote!(struct A { #[subscribe(id)] a: i64 }),
                "unknown subscribe field option `id`; expected one of: embeds",
            ),
            (
                parse_quote!(#[subscribe(as = "A", as = "B")] struct A {}),
                "duplicate subscribe option `as`",
            ),
            (
                parse_quote!(#[subscribe(as = "")] struct A {}),
                "`as` must not be empty",
            ),
            (
                parse_quote!(#[subscribe(observer = true)] struct A {}),
                "`observer` is a flag and takes no value",
            ),
            (
                parse_quote!(struct A<'a> { a: &'a str }),
                "#[derive(Subscribe)] does not support generic structs",
            ),
            (parse_quote!(struct A;), "needs a struct with named fields"),
        ];
        for (input, expected) in cases {
            let message = match parse(&input) {
                Ok(_) => panic!("expected an error for {expected:?}"),
                Err(e) => e.to_string(),
            };
            assert!(
                message.contains(expected),
                "expected {expected:?} in {message:?}"
            );
        }
    }
}
