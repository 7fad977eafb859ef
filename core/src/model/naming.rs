//! Naming conventions shared by publishers and subscribers.

/// `UserGroup` → `user_group`, `HTTPServer` → `http_server`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn converts_type_names() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("UserGroup"), "user_group");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("user_event"), "user_event");
        assert_eq!(snake_case("Model2Thing"), "model2_thing");
    }
}
