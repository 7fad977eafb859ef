//! Code generation shared by `#[derive(Publish)]`, `#[derive(Subscribe)]` and `define!`.
//!
//! Generated code names only `<crate>::__private::{core, inventory, serde_json,
//! async_trait}` and `::std`, so users depend on the facade crate alone.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::spec::{unraw, PublisherSpec, Source, SubscriberSpec};

/// `Some(x)` or `None` as tokens.
fn option<T: quote::ToTokens>(value: Option<&T>) -> TokenStream {
    match value {
        Some(value) => quote!(::std::option::Option::Some(#value)),
        None => quote!(::std::option::Option::None),
    }
}

/// The `Publish` impl and the registration of a publisher.
pub(crate) fn publisher(spec: &PublisherSpec) -> TokenStream {
    let krate = &spec.krate;
    let core = quote!(#krate::__private::core);
    let json = quote!(#krate::__private::serde_json);
    let target = &spec.target;
    let model = &spec.model;
    let to = option(spec.to.as_ref());
    let ephemeral = spec.ephemeral;
    let parent = option(
        spec.parent
            .as_ref()
            .map(|p| quote!(<#p as #core::model::Publish>::definition))
            .as_ref(),
    );

    let attributes = spec.attributes.iter().map(|attr| {
        let name = unraw(&attr.ident);
        let json_type = &attr.json_type;
        let source = match attr.source {
            Source::Field => quote!(Field),
            Source::Virtual => quote!(Virtual),
            Source::Embedded => quote!(Embedded),
        };
        quote! {
            #core::model::AttributeDef {
                name: #name,
                source: #core::model::AttributeSource::#source,
                json_type: #json_type,
            }
        }
    });

    let (id_kind, id_body) = match &spec.id {
        None => (quote!("none"), quote!(#json::Value::Null)),
        Some(id) => {
            let field = &id.field;
            match &id.ty {
                // Derives: the field and its type are known.
                Some(ty) => (
                    quote_spanned! {ty_span(ty)=> <#ty as #core::model::RecordId>::id_kind() },
                    quote_spanned! {field.span()=> #core::model::RecordId::to_id(&self.#field) },
                ),
                // define!: the field is reached by destructuring, so a missing field reads
                // "struct `X` does not have a field named `id`", and its type is inferred.
                None => (
                    quote_spanned! {field.span()=>
                        {
                            fn __promiscuous_id_kind<__T: #core::model::RecordId>(
                                _: fn(&#target) -> &__T,
                            ) -> &'static str {
                                <__T as #core::model::RecordId>::id_kind()
                            }
                            __promiscuous_id_kind(|__model: &#target| {
                                let #target { #field: __id, .. } = __model;
                                __id
                            })
                        }
                    },
                    quote_spanned! {field.span()=>
                        let #target { #field: __id, .. } = self;
                        #core::model::RecordId::to_id(__id)
                    },
                ),
            }
        }
    };

    let computed = spec
        .attributes
        .iter()
        .filter(|attr| attr.source != Source::Field)
        .map(|attr| {
            let ident = &attr.ident;
            let name = unraw(ident);
            let value = if attr.source == Source::Virtual {
                quote_spanned! {ident.span()=>
                    #json::to_value(&self.#ident()).map_err(|error| #core::Error::Attribute {
                        model: ::std::string::ToString::to_string(#model),
                        attribute: ::std::string::ToString::to_string(#name),
                        problem: ::std::format!("cannot serialise the virtual attribute: {}", error),
                    })?
                }
            } else {
                quote_spanned! {ident.span()=> #core::model::embed(&self.#ident)? }
            };
            quote! {
                __attributes.insert(::std::string::ToString::to_string(#name), #value);
            }
        })
        .collect::<Vec<_>>();
    let computed_fn = if computed.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            fn computed_attributes(
                &self,
            ) -> #core::Result<#json::Map<::std::string::String, #json::Value>> {
                let mut __attributes = #json::Map::new();
                #(#computed)*
                ::std::result::Result::Ok(__attributes)
            }
        }
    };

    let sample_fn = sample_fn(spec);
    let attributes_of_fn = attributes_of_fn(spec);
    let embeds = embeds(spec);
    let mock = spec.mock;
    let internal = spec.internal;

    quote! {
        impl #core::model::Publish for #target {
            fn definition() -> &'static #core::model::PublisherDef {
                static ATTRIBUTES: &[#core::model::AttributeDef] = &[#(#attributes),*];
                static DEF: ::std::sync::OnceLock<#core::model::PublisherDef> =
                    ::std::sync::OnceLock::new();
                DEF.get_or_init(|| #core::model::PublisherDef {
                    model: #model,
                    to: #to,
                    parent: #parent,
                    attributes: ATTRIBUTES,
                    ephemeral: #ephemeral,
                    id_kind: #id_kind,
                })
            }

            fn id(&self) -> #json::Value {
                #id_body
            }

            #computed_fn
        }

        const _: () = {
            #sample_fn

            #attributes_of_fn

            #krate::__private::inventory::submit! {
                #core::model::PublisherRegistration {
                    definition: <#target as #core::model::Publish>::definition,
                    sample: __promiscuous_sample,
                    attributes_of: __promiscuous_attributes_of,
                    embeds: &[#(#embeds),*],
                    mock: #mock,
                    internal: #internal,
                }
            }
        };
    }
}

/// A fn item `__promiscuous_sample` returning the published attributes of
/// `<target>::default()`, or `None` when the target does not implement
/// `Default` (autoref specialisation: the first trait applies only with `Default`).
/// A sea-orm `Model` is made from `ActiveModel::default_values()` instead:
/// the crate deriving it names `sea_orm` already (`DeriveEntityModel` needs it).
fn sample_fn(spec: &PublisherSpec) -> TokenStream {
    let krate = &spec.krate;
    let core = quote!(#krate::__private::core);
    let json = quote!(#krate::__private::serde_json);
    let target = &spec.target;
    let output = quote! {
        ::std::option::Option<
            #core::Result<#json::Map<::std::string::String, #json::Value>>
        >
    };
    if spec.sea_orm {
        return quote! {
            fn __promiscuous_sample() -> #output {
                type __Active = <<#target as sea_orm::ModelTrait>::Entity as sea_orm::EntityTrait>::ActiveModel;
                let __active = <__Active as sea_orm::ActiveModelTrait>::default_values();
                match <__Active as sea_orm::TryIntoModel<#target>>::try_into_model(__active) {
                    ::std::result::Result::Ok(__model) => {
                        ::std::option::Option::Some(#core::model::published_attributes(&__model))
                    }
                    ::std::result::Result::Err(_) => ::std::option::Option::None,
                }
            }
        };
    }
    quote! {
        fn __promiscuous_sample() -> #output {
            struct __Probe<__T>(::std::marker::PhantomData<__T>);
            #[allow(dead_code)]
            trait __ViaDefault {
                fn __sample(&self) -> #output;
            }
            impl<__T: #core::model::Publish + ::std::default::Default> __ViaDefault for &__Probe<__T> {
                fn __sample(&self) -> #output {
                    ::std::option::Option::Some(#core::model::published_attributes(
                        &<__T as ::std::default::Default>::default(),
                    ))
                }
            }
            #[allow(dead_code)]
            trait __NoDefault {
                fn __sample(&self) -> #output;
            }
            impl<__T> __NoDefault for __Probe<__T> {
                fn __sample(&self) -> #output {
                    ::std::option::Option::None
                }
            }
            (&&__Probe::<#target>(::std::marker::PhantomData)).__sample()
        }
    }
}

/// A fn item `__promiscuous_attributes_of` returning the published
/// attributes of the model read from a stored record, or `None` when the
/// target does not implement `DeserializeOwned` (autoref specialisation, as
/// in [`sample_fn`]). Recovery publishes a stored record's state with it.
fn attributes_of_fn(spec: &PublisherSpec) -> TokenStream {
    let krate = &spec.krate;
    let core = quote!(#krate::__private::core);
    let json = quote!(#krate::__private::serde_json);
    let target = &spec.target;
    let record = quote!(#json::Map<::std::string::String, #json::Value>);
    let output = quote! {
        ::std::option::Option<#core::Result<#record>>
    };
    quote! {
        fn __promiscuous_attributes_of(__record: &#record) -> #output {
            struct __Probe<__T>(::std::marker::PhantomData<__T>);
            #[allow(dead_code)]
            trait __ViaDeserialize {
                fn __attributes(&self, __record: &#record) -> #output;
            }
            impl<__T: #core::model::Publish + #krate::__private::serde::de::DeserializeOwned> __ViaDeserialize for &__Probe<__T> {
                fn __attributes(&self, __record: &#record) -> #output {
                    let __model = #core::model::from_record::<__T>(
                        <__T as #core::model::Publish>::definition().model,
                        __record,
                        "from the stored record",
                    );
                    ::std::option::Option::Some(
                        __model.and_then(|__model| #core::model::published_attributes(&__model)),
                    )
                }
            }
            #[allow(dead_code)]
            trait __NoDeserialize {
                fn __attributes(&self, __record: &#record) -> #output;
            }
            impl<__T> __NoDeserialize for __Probe<__T> {
                fn __attributes(&self, _: &#record) -> #output {
                    ::std::option::Option::None
                }
            }
            (&&__Probe::<#target>(::std::marker::PhantomData)).__attributes(__record)
        }
    }
}

/// The model an embedded field of type `T`, `Option<T>` or `Vec<T>` embeds: `T`.
fn embedded_model(ty: &syn::Type) -> &syn::Type {
    match ty {
        syn::Type::Paren(p) => embedded_model(&p.elem),
        syn::Type::Group(g) => embedded_model(&g.elem),
        syn::Type::Path(p) if p.qself.is_none() => {
            let inner = p.path.segments.last().and_then(|last| {
                if last.ident != "Option" && last.ident != "Vec" {
                    return None;
                }
                match &last.arguments {
                    syn::PathArguments::AngleBracketed(args) => {
                        args.args.iter().find_map(|arg| match arg {
                            syn::GenericArgument::Type(ty) => Some(ty),
                            _ => None,
                        })
                    }
                    _ => None,
                }
            });
            inner.unwrap_or(ty)
        }
        _ => ty,
    }
}

/// `("name", fn)` entries of the registration's `embeds`: for each embedded
/// field of known type, a fn returning the embedded model's definition, or
/// `None` when that type is not `Publish` (a custom `Embed` impl).
fn embeds(spec: &PublisherSpec) -> Vec<TokenStream> {
    let krate = &spec.krate;
    let core = quote!(#krate::__private::core);
    let output = quote!(::std::option::Option<&'static #core::model::PublisherDef>);
    spec.attributes
        .iter()
        .filter(|attr| attr.source == Source::Embedded)
        .filter_map(|attr| {
            let ty = embedded_model(attr.ty.as_ref()?);
            let name = unraw(&attr.ident);
            Some(quote! {
                (#name, {
                    fn __promiscuous_embedded() -> #output {
                        struct __Probe<__T>(::std::marker::PhantomData<__T>);
                        #[allow(dead_code)]
                        trait __ViaPublish {
                            fn __definition(&self) -> #output;
                        }
                        impl<__T: #core::model::Publish> __ViaPublish for &__Probe<__T> {
                            fn __definition(&self) -> #output {
                                ::std::option::Option::Some(
                                    <__T as #core::model::Publish>::definition(),
                                )
                            }
                        }
                        #[allow(dead_code)]
                        trait __NotPublish {
                            fn __definition(&self) -> #output;
                        }
                        impl<__T> __NotPublish for __Probe<__T> {
                            fn __definition(&self) -> #output {
                                ::std::option::Option::None
                            }
                        }
                        (&&__Probe::<#ty>(::std::marker::PhantomData)).__definition()
                    }
                    __promiscuous_embedded as fn() -> #output
                })
            })
        })
        .collect()
}

/// The `Subscribe` impl, the empty `Callbacks` impl unless the user writes one,
/// and the registration of a subscriber.
pub(crate) fn subscriber(spec: &SubscriberSpec) -> TokenStream {
    let krate = &spec.krate;
    let core = quote!(#krate::__private::core);
    let target = &spec.target;
    let model = &spec.model;
    let as_name = spec.as_name.as_ref().unwrap_or(model);
    let from = option(spec.from.as_ref());
    let foreign_key = option(spec.foreign_key.as_ref());
    let observer = spec.observer;
    let internal = spec.internal;
    let parent = option(
        spec.parent
            .as_ref()
            .map(|p| quote!(<#p as #core::model::Subscribe>::definition))
            .as_ref(),
    );
    let attributes = spec.attributes.iter().map(|attr| {
        let name = unraw(&attr.ident);
        let embedded = attr.embedded;
        quote! {
            #core::model::SubscribedAttribute { name: #name, embedded: #embedded }
        }
    });
    let callbacks = if spec.user_callbacks {
        TokenStream::new()
    } else {
        quote! {
            #[#krate::__private::async_trait]
            impl #core::model::Callbacks for #target {}
        }
    };

    quote! {
        impl #core::model::Subscribe for #target {
            fn definition() -> &'static #core::model::SubscriberDef {
                static DEF: #core::model::SubscriberDef = #core::model::SubscriberDef {
                    model: #model,
                    as_name: #as_name,
                    from: #from,
                    parent: #parent,
                    attributes: &[#(#attributes),*],
                    foreign_key: #foreign_key,
                    observer: #observer,
                };
                &DEF
            }
        }

        #callbacks

        const _: () = {
            #krate::__private::inventory::submit! {
                #core::model::SubscriberRegistration {
                    definition: <#target as #core::model::Subscribe>::definition,
                    handler: &#core::subscriber::TypedHandler::<#target>::NEW,
                    internal: #internal,
                }
            }
        };
    }
}

/// The span of a type, for errors about its `RecordId` impl.
fn ty_span(ty: &syn::Type) -> proc_macro2::Span {
    syn::spanned::Spanned::span(ty)
}
