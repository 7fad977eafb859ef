//! Parsing the `define!` block into publisher and subscriber specs.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, bracketed, Ident, LitStr, Path, Token};

use crate::codegen;
use crate::spec::{
    check_to_parent, check_unique, default_crate, model_name, non_empty, parse_crate, set_once,
    unraw, IdSpec, PublishedAttr, PublisherSpec, Source, SubscribedAttr, SubscriberSpec,
};

const PUBLISH_OPTIONS: &str =
    "to, parent, ephemeral, model, id, attributes, embeds, virtual, crate";
const SUBSCRIBE_OPTIONS: &str =
    "from, as, model, parent, foreign_key, observer, callbacks, attributes, embeds, crate";

/// One entry of a `define!` block.
#[derive(Debug)]
pub(crate) enum Entry {
    /// `publish Type { ... }`
    Publish(Box<PublisherSpec>),
    /// `subscribe Type { ... }`
    Subscribe(Box<SubscriberSpec>),
}

/// The whole `define!` block.
#[derive(Debug)]
pub(crate) struct Definitions(pub Vec<Entry>);

impl Parse for Definitions {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut entries = Vec::new();
        while !input.is_empty() {
            let kind = Ident::parse_any(input)
                .map_err(|e| syn::Error::new(e.span(), "expected `publish` or `subscribe`"))?;
            let target = parse_target(input)?;
            let content;
            braced!(content in input);
            let options = parse_options(&content)?;
            entries.push(match kind.to_string().as_str() {
                "publish" => Entry::Publish(Box::new(publisher(target, options)?)),
                "subscribe" => Entry::Subscribe(Box::new(subscriber(target, options)?)),
                other => {
                    return Err(syn::Error::new(
                        kind.span(),
                        format!("unknown definition `{other}`; expected `publish` or `subscribe`"),
                    ))
                }
            });
            if input.peek(Token![;]) {
                input.parse::<Token![;]>()?;
            } else if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(Definitions(entries))
    }
}

/// Expands a parsed block into impls and registrations.
pub(crate) fn expand(definitions: &Definitions) -> TokenStream {
    definitions
        .0
        .iter()
        .map(|entry| match entry {
            Entry::Publish(spec) => codegen::publisher(spec),
            Entry::Subscribe(spec) => codegen::subscriber(spec),
        })
        .collect()
}

/// The model type: a path without generic arguments.
fn parse_target(input: ParseStream) -> syn::Result<Path> {
    let path: Path = input.parse()?;
    for segment in &path.segments {
        if !segment.arguments.is_none() {
            return Err(syn::Error::new_spanned(
                &segment.arguments,
                "define! does not support generic types: definitions are static and registered once per type",
            ));
        }
    }
    Ok(path)
}

/// The value of one option.
enum Value {
    Flag,
    Str(LitStr),
    Path(Path),
    List(Vec<Ident>),
}

/// One `key` or `key: value` option.
struct Opt {
    key: Ident,
    value: Value,
}

fn parse_options(input: ParseStream) -> syn::Result<Vec<Opt>> {
    let mut options = Vec::new();
    while !input.is_empty() {
        let key = Ident::parse_any(input)?;
        let value = if input.peek(Token![:]) && !input.peek(Token![::]) {
            input.parse::<Token![:]>()?;
            if unraw(&key) == "crate" {
                Value::Path(parse_crate(input)?)
            } else if input.peek(LitStr) {
                Value::Str(input.parse()?)
            } else if input.peek(syn::token::Bracket) {
                let content;
                bracketed!(content in input);
                let idents = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                Value::List(idents.into_iter().collect())
            } else {
                Value::Path(input.parse()?)
            }
        } else {
            Value::Flag
        };
        options.push(Opt { key, value });
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(options)
}

/// What an option's value is expected to look like, for errors.
fn expected(key: &str) -> &'static str {
    match key {
        "to" => "`to: \"app/model\"`",
        "from" => "`from: \"app/model\"`",
        "model" => "`model: \"Name\"`",
        "as" => "`as: \"Name\"`",
        "foreign_key" => "`foreign_key: \"field\"`",
        "parent" => "`parent: Type`",
        "id" => "`id: field`",
        "crate" => "`crate: \"::path\"`",
        "attributes" | "embeds" | "virtual" => "a list such as `[a, b]`",
        _ => "a flag with no value",
    }
}

fn wrong(opt: &Opt) -> syn::Error {
    let key = unraw(&opt.key);
    syn::Error::new(
        opt.key.span(),
        format!("`{key}` expects {}", expected(&key)),
    )
}

fn string(opt: Opt) -> syn::Result<LitStr> {
    let key = unraw(&opt.key);
    match opt.value {
        Value::Str(lit) => non_empty(&key, lit),
        _ => Err(wrong(&opt)),
    }
}

fn path(opt: Opt) -> syn::Result<Path> {
    match opt.value {
        Value::Path(path) => Ok(path),
        _ => Err(wrong(&opt)),
    }
}

fn list(opt: Opt) -> syn::Result<Vec<Ident>> {
    match opt.value {
        Value::List(idents) => Ok(idents),
        _ => Err(wrong(&opt)),
    }
}

fn flag(opt: &Opt, slot: &mut Option<()>, what: &str) -> syn::Result<()> {
    match opt.value {
        Value::Flag => set_once(slot, (), what, opt.key.span()),
        _ => Err(wrong(opt)),
    }
}

fn ident(opt: Opt) -> syn::Result<Ident> {
    match &opt.value {
        Value::Path(path) => match path.get_ident() {
            Some(ident) => Ok(ident.clone()),
            None => Err(wrong(&opt)),
        },
        _ => Err(wrong(&opt)),
    }
}

fn publisher(target: Path, options: Vec<Opt>) -> syn::Result<PublisherSpec> {
    let model_default = model_name(&target)?;
    let (mut to, mut parent, mut ephemeral, mut model, mut id, mut krate) =
        (None, None, None, None, None, None);
    let mut attributes = Vec::new();
    for opt in options {
        let key = unraw(&opt.key);
        let span = opt.key.span();
        let what = format!("publish option `{key}`");
        match key.as_str() {
            "to" => set_once(&mut to, string(opt)?, &what, span)?,
            "parent" => set_once(&mut parent, path(opt)?, &what, span)?,
            "ephemeral" => flag(&opt, &mut ephemeral, &what)?,
            "model" => set_once(&mut model, string(opt)?, &what, span)?,
            "id" => set_once(&mut id, ident(opt)?, &what, span)?,
            "crate" => set_once(&mut krate, path(opt)?, &what, span)?,
            "attributes" | "embeds" | "virtual" => {
                let source = match key.as_str() {
                    "attributes" => Source::Field,
                    "embeds" => Source::Embedded,
                    _ => Source::Virtual,
                };
                attributes.extend(list(opt)?.into_iter().map(|ident| PublishedAttr {
                    ident,
                    source,
                    json_type: "any".into(),
                    ty: None,
                }));
            }
            _ => {
                return Err(syn::Error::new(
                    span,
                    format!("unknown publish option `{key}`; expected one of: {PUBLISH_OPTIONS}"),
                ))
            }
        }
    }
    check_to_parent(to.as_ref(), parent.as_ref())?;
    check_unique(&model_default.value(), attributes.iter().map(|a| &a.ident))?;
    let ephemeral = ephemeral.is_some();
    let id = match id {
        Some(field) => Some(field),
        None if ephemeral => None,
        None => Some(Ident::new("id", model_default.span())),
    };
    Ok(PublisherSpec {
        krate: krate.unwrap_or_else(default_crate),
        model: model.unwrap_or(model_default),
        target,
        to,
        parent,
        ephemeral,
        id: id.map(|field| IdSpec { field, ty: None }),
        attributes,
        mock: false,
        internal: false,
        sea_orm: false,
    })
}

fn subscriber(target: Path, options: Vec<Opt>) -> syn::Result<SubscriberSpec> {
    let (mut from, mut as_name, mut parent, mut foreign_key, mut krate) =
        (None, None, None, None, None);
    let mut model = None;
    let (mut observer, mut callbacks) = (None, None);
    let mut attributes = Vec::new();
    for opt in options {
        let key = unraw(&opt.key);
        let span = opt.key.span();
        let what = format!("subscribe option `{key}`");
        match key.as_str() {
            "from" => set_once(&mut from, string(opt)?, &what, span)?,
            "as" => set_once(&mut as_name, string(opt)?, &what, span)?,
            "model" => set_once(&mut model, string(opt)?, &what, span)?,
            "parent" => set_once(&mut parent, path(opt)?, &what, span)?,
            "foreign_key" => set_once(&mut foreign_key, string(opt)?, &what, span)?,
            "observer" => flag(&opt, &mut observer, &what)?,
            "callbacks" => flag(&opt, &mut callbacks, &what)?,
            "crate" => set_once(&mut krate, path(opt)?, &what, span)?,
            "attributes" | "embeds" => {
                let embedded = key == "embeds";
                attributes.extend(
                    list(opt)?
                        .into_iter()
                        .map(|ident| SubscribedAttr { ident, embedded }),
                );
            }
            _ => {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "unknown subscribe option `{key}`; expected one of: {SUBSCRIBE_OPTIONS}"
                    ),
                ))
            }
        }
    }
    let as_name = as_name.or_else(|| model.clone());
    let model = match model {
        Some(model) => model,
        None => model_name(&target)?,
    };
    check_unique(&model.value(), attributes.iter().map(|a| &a.ident))?;
    Ok(SubscriberSpec {
        krate: krate.unwrap_or_else(default_crate),
        target,
        model,
        as_name,
        from,
        parent,
        foreign_key,
        observer: observer.is_some(),
        user_callbacks: callbacks.is_some(),
        internal: false,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: TokenStream) -> syn::Result<Definitions> {
        syn::parse2(tokens)
    }

    #[test]
    fn parses_the_documented_example() {
        let defs = parse(quote::quote! {
            publish User { to: "crowdtap/user", attributes: [name, email], virtual: [full_name] }
            publish Member { parent: User, attributes: [points] }
            publish UserEvent { ephemeral, attributes: [user_id, event_name] }
            publish crate::Account { id: account_number, attributes: [number], embeds: [addresses], crate: "crate" };
            subscribe Profile { from: "crowdtap/user", as: "User", foreign_key: "crowdtap_id", attributes: [name, email], callbacks, }
            subscribe Mailer { observer, attributes: [user_id], embeds: [addresses] }
        })
        .unwrap();
        assert_eq!(defs.0.len(), 6);
        let Entry::Publish(user) = &defs.0[0] else {
            panic!("publish expected")
        };
        assert_eq!(user.to.as_ref().unwrap().value(), "crowdtap/user");
        assert_eq!(user.id.as_ref().unwrap().field, "id");
        let sources: Vec<_> = user.attributes.iter().map(|a| a.source).collect();
        assert_eq!(sources, [Source::Field, Source::Field, Source::Virtual]);
        let Entry::Publish(event) = &defs.0[2] else {
            panic!("publish expected")
        };
        assert!(event.ephemeral && event.id.is_none());
        let Entry::Publish(account) = &defs.0[3] else {
            panic!("publish expected")
        };
        assert_eq!(account.model.value(), "Account");
        assert_eq!(account.id.as_ref().unwrap().field, "account_number");
        assert_eq!(account.attributes[1].source, Source::Embedded);
        let Entry::Subscribe(profile) = &defs.0[4] else {
            panic!("subscribe expected")
        };
        assert_eq!(profile.as_name.as_ref().unwrap().value(), "User");
        assert!(profile.user_callbacks && !profile.observer);
        let Entry::Subscribe(mailer) = &defs.0[5] else {
            panic!("subscribe expected")
        };
        assert!(mailer.observer && mailer.attributes[1].embedded);
        assert!(!expand(&defs).is_empty());
    }

    #[test]
    fn errors() {
        let cases = vec![
            (
                quote::quote!(publish A { foo: "x" }),
                "unknown publish option `foo`; expected one of: to, parent, ephemeral, model, id, attributes, embeds, virtual, crate",
            ),
            (
                quote::quote!(subscribe A { to: "x" }),
                "unknown subscribe option `to`; expected one of: from, as, model, parent",
            ),
            (
                quote::quote!(publisher A {}),
                "unknown definition `publisher`; expected `publish` or `subscribe`",
            ),
            (quote::quote!(publish A { to: x }), "`to` expects `to: \"app/model\"`"),
            (quote::quote!(publish A { attributes: "x" }), "`attributes` expects a list"),
            (quote::quote!(publish A { ephemeral: "x" }), "`ephemeral` expects a flag"),
            (quote::quote!(publish A { to: "a", to: "b" }), "duplicate publish option `to`"),
            (
                quote::quote!(publish A { attributes: [a], virtual: [a] }),
                "attribute `a` is declared twice on A",
            ),
            (quote::quote!(publish A<T> {}), "does not support generic types"),
            (quote::quote!(publish A { to: "a", parent: B }), "cannot be combined"),
            (quote::quote!(subscribe A { as: "" }), "`as` must not be empty"),
            (quote::quote!("x"), "expected `publish` or `subscribe`"),
            (quote::quote!(publish A { to: "a" b }), "expected `,`"),
        ];
        for (tokens, expected) in cases {
            let message = match parse(tokens) {
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
