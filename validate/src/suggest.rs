//! "Did you mean …?": the closest name by edit distance.

/// Edit distance between `a` and `b`, ignoring ASCII case: Levenshtein
/// (insertions, deletions, substitutions) plus swaps of adjacent characters,
/// so `emial` is 1 away from `email`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let width = b.len() + 1;
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
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
