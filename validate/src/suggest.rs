//! "Did you mean …?": the closest name by edit distance.

/// Edit distance between `a` and `b`, ignoring ASCII case: the optimal
/// string alignment distance (insertions, deletions, substitutions and swaps
/// of adjacent characters), so `emial` is 1 away from `email`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(&a.to_ascii_lowercase(), &b.to_ascii_lowercase())
}

/// The candidate closest to `target` (the first of equally close ones).
pub(crate) fn closest<'a>(target: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .copied()
        .min_by_key(|candidate| distance(target, candidate))
}

/// Whether `candidate` is close enough to `target` to be a likely typo.
fn is_close(target: &str, candidate: &str) -> bool {
    let longest = target.chars().count().max(candidate.chars().count());
    distance(target, candidate) <= (longest / 3).max(1)
}

/// `a, b, c` (at most 12 names, then `…`).
pub(crate) fn list(names: &[&str]) -> String {
    const SHOWN: usize = 12;
    let mut text = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(", …");
    }
    text
}

/// A hint naming the candidate closest to `target`, written with `show`
/// (e.g. ``|name| format!("`{name}`")``), followed by every candidate.
///
/// `what` names the kind of candidates, plural (`published attributes`).
pub(crate) fn suggestion(
    target: &str,
    candidates: &[&str],
    what: &str,
    show: impl Fn(&str) -> String,
) -> String {
    match closest(target, candidates) {
        None => format!("there are no {what}"),
        Some(best) if is_close(target, best) => {
            format!(
                "did you mean {}? ({what}: {})",
                show(best),
                list(candidates)
            )
        }
        Some(best) => format!(
            "the closest is {} ({what}: {})",
            show(best),
            list(candidates)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("email", "email"), 0);
        assert_eq!(distance("emial", "email"), 1);
        assert_eq!(distance("naem", "name"), 1);
        assert_eq!(distance("Email", "email"), 0);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn suggestions() {
        let names = ["name", "email", "group_id"];
        let tick = |n: &str| format!("`{n}`");
        assert_eq!(
            suggestion("emial", &names, "published attributes", tick),
            "did you mean `email`? (published attributes: name, email, group_id)"
        );
        assert_eq!(
            suggestion("group", &names, "published attributes", tick),
            "the closest is `group_id` (published attributes: name, email, group_id)"
        );
        assert_eq!(
            suggestion("x", &[], "published attributes", tick),
            "there are no published attributes"
        );
    }
}
