//! Guessing the JSON type of a field from its Rust type.

use syn::{GenericArgument, PathArguments, Type};

/// The JSON type of a field of type `ty`: `string`, `integer`, `number`,
/// `boolean`, `array`, `object` or `any`, with `?` when it may be null.
pub(crate) fn json_type(ty: &Type) -> String {
    match ty {
        Type::Reference(r) => json_type(&r.elem),
        Type::Paren(p) => json_type(&p.elem),
        Type::Group(g) => json_type(&g.elem),
        Type::Array(_) | Type::Slice(_) => "array".into(),
        Type::Tuple(t) if !t.elems.is_empty() => "array".into(),
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return "any".into();
            };
            let name = last.ident.to_string();
            match name.as_str() {
                "Option" => match first_type_arg(&last.arguments) {
                    Some(inner) => nullable(json_type(inner)),
                    None => "any".into(),
                },
                "Box" | "Rc" | "Arc" | "Cow" => match first_type_arg(&last.arguments) {
                    Some(inner) => json_type(inner),
                    None => "any".into(),
                },
                other => scalar(other).into(),
            }
        }
        _ => "any".into(),
    }
}

/// The JSON type of an embedded field: `object`, `array` for `Vec`, `?` for `Option`.
pub(crate) fn embedded_json_type(ty: &Type) -> String {
    match ty {
        Type::Reference(r) => embedded_json_type(&r.elem),
        Type::Paren(p) => embedded_json_type(&p.elem),
        Type::Group(g) => embedded_json_type(&g.elem),
        Type::Array(_) | Type::Slice(_) => "array".into(),
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(last) if last.ident == "Option" => match first_type_arg(&last.arguments) {
                Some(inner) => nullable(embedded_json_type(inner)),
                None => "object?".into(),
            },
            Some(last) if last.ident == "Vec" => "array".into(),
            Some(last) if matches!(last.ident.to_string().as_str(), "Box" | "Rc" | "Arc") => {
                first_type_arg(&last.arguments).map_or_else(|| "object".into(), embedded_json_type)
            }
            _ => "object".into(),
        },
        _ => "object".into(),
    }
}

/// The JSON type of a type named `name` (last path segment).
fn scalar(name: &str) -> &'static str {
    match name {
        "String" | "str" | "char" => "string",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => "integer",
        "f32" | "f64" => "number",
        "bool" => "boolean",
        "Vec" | "VecDeque" | "LinkedList" | "HashSet" | "BTreeSet" => "array",
        "HashMap" | "BTreeMap" | "Map" => "object",
        _ => "any",
    }
}

/// Adds the nullable marker once.
fn nullable(inner: String) -> String {
    if inner.ends_with('?') || inner == "any" {
        inner
    } else {
        inner + "?"
    }
}

/// The first generic type argument, e.g. `T` in `Option<T>`.
fn first_type_arg(args: &PathArguments) -> Option<&Type> {
    match args {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn guess(ty: Type) -> String {
        json_type(&ty)
    }

    #[test]
    fn scalars() {
        assert_eq!(guess(parse_quote!(String)), "string");
        assert_eq!(guess(parse_quote!(&'static str)), "string");
        assert_eq!(guess(parse_quote!(char)), "string");
        assert_eq!(guess(parse_quote!(i64)), "integer");
        assert_eq!(guess(parse_quote!(std::primitive::u8)), "integer");
        assert_eq!(guess(parse_quote!(usize)), "integer");
        assert_eq!(guess(parse_quote!(f32)), "number");
        assert_eq!(guess(parse_quote!(bool)), "boolean");
        assert_eq!(guess(parse_quote!(Uuid)), "any");
        assert_eq!(guess(parse_quote!(serde_json::Value)), "any");
    }

    #[test]
    fn collections() {
        assert_eq!(guess(parse_quote!(Vec<String>)), "array");
        assert_eq!(guess(parse_quote!(std::collections::HashSet<u8>)), "array");
        assert_eq!(guess(parse_quote!(BTreeSet<u8>)), "array");
        assert_eq!(guess(parse_quote!([u8; 4])), "array");
        assert_eq!(guess(parse_quote!(HashMap<String, i32>)), "object");
        assert_eq!(guess(parse_quote!(BTreeMap<String, i32>)), "object");
        assert_eq!(
            guess(parse_quote!(serde_json::Map<String, Value>)),
            "object"
        );
    }

    #[test]
    fn options() {
        assert_eq!(guess(parse_quote!(Option<String>)), "string?");
        assert_eq!(guess(parse_quote!(Option<Option<i32>>)), "integer?");
        assert_eq!(guess(parse_quote!(Option<Vec<i32>>)), "array?");
        assert_eq!(guess(parse_quote!(Option<Thing>)), "any");
        assert_eq!(guess(parse_quote!(Box<str>)), "string");
    }

    #[test]
    fn embedded() {
        let e = |ty: Type| embedded_json_type(&ty);
        assert_eq!(e(parse_quote!(Address)), "object");
        assert_eq!(e(parse_quote!(Option<Address>)), "object?");
        assert_eq!(e(parse_quote!(Vec<Address>)), "array");
        assert_eq!(e(parse_quote!(Option<Vec<Address>>)), "array?");
    }
}
