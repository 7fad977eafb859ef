//! A small line diff, to show how a mocks file differs from the export.

/// Lines of context around each change.
const CONTEXT: usize = 2;
/// At most this many diff lines are shown.
const MAX_LINES: usize = 120;
/// Above this many cells, the LCS table is not built; the diff then shows the
/// differing middle of the two texts as one hunk.
const MAX_CELLS: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Same,
    Removed,
    Added,
}

/// The edits turning `old` into `new` (longest common subsequence).
fn edits<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(Edit, &'a str)> {
    // Common prefix and suffix first: the table covers the middle only.
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (a, b) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    let mut out: Vec<(Edit, &str)> = old[..prefix].iter().map(|l| (Edit::Same, *l)).collect();
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        out.extend(a.iter().map(|l| (Edit::Removed, *l)));
        out.extend(b.iter().map(|l| (Edit::Added, *l)));
    } else {
        // lcs[i][j]: length of the LCS of a[i..] and b[j..].
        let width = b.len() + 1;
        let mut lcs = vec![0usize; (a.len() + 1) * width];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i * width + j] = if a[i] == b[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                out.push((Edit::Same, a[i]));
                i += 1;
                j += 1;
            } else if i < a.len()
                && (j == b.len() || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])
            {
                out.push((Edit::Removed, a[i]));
                i += 1;
            } else {
                out.push((Edit::Added, b[j]));
                j += 1;
            }
        }
    }
    out.extend(old[old.len() - suffix..].iter().map(|l| (Edit::Same, *l)));
    out
}

/// A unified diff of `old` (labelled `old_label`) against `new`, with a few
/// lines of context; empty when they are equal.
pub(crate) fn line_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let edits = edits(&old_lines, &new_lines);
    let changed: Vec<usize> = edits
        .iter()
        .enumerate()
        .filter(|(_, (edit, _))| *edit != Edit::Same)
        .map(|(i, _)| i)
        .collect();
    if changed.is_empty() {
        return if old == new {
            String::new()
        } else {
            format!("--- {old_label}\n+++ {new_label}\n(the texts differ only in line endings or the final newline)\n")
        };
    }
    // Hunks: runs of edits whose changes are at most 2 * CONTEXT apart.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &index in &changed {
        let start = index.saturating_sub(CONTEXT);
        let end = (index + CONTEXT + 1).min(edits.len());
        match hunks.last_mut() {
            Some(last) if start < last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    let mut out = vec![format!("--- {old_label}"), format!("+++ {new_label}")];
    // Line numbers before each edit.
    let mut numbers = Vec::with_capacity(edits.len());
    let (mut old_no, mut new_no) = (1usize, 1usize);
    for (edit, _) in &edits {
        numbers.push((old_no, new_no));
        match edit {
            Edit::Same => {
                old_no += 1;
                new_no += 1;
            }
            Edit::Removed => old_no += 1,
            Edit::Added => new_no += 1,
        }
    }
    let mut shown = 0;
    let total: usize = hunks.iter().map(|(s, e)| e - s + 1).sum();
    for (start, end) in hunks {
        let count =
            |keep: fn(Edit) -> bool| edits[start..end].iter().filter(|(e, _)| keep(*e)).count();
        let (old_start, new_start) = numbers[start];
        out.push(format!(
            "@@ -{old_start},{} +{new_start},{} @@",
            count(|e| e != Edit::Added),
            count(|e| e != Edit::Removed)
        ));
        for (edit, line) in &edits[start..end] {
            let mark = match edit {
                Edit::Same => ' ',
                Edit::Removed => '-',
                Edit::Added => '+',
            };
            out.push(format!("{mark}{line}"));
        }
        shown += end - start + 1;
        if shown >= MAX_LINES {
            break;
        }
    }
    if total > shown {
        out.push(format!("… ({} more diff lines)", total - shown));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::line_diff;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(line_diff("a\nb\n", "a\nb\n", "old", "new"), "");
    }

    #[test]
    fn shows_changes_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\nten\n";
        assert_eq!(
            line_diff(old, new, "file", "export"),
            "--- file\n+++ export\n@@ -3,5 +3,5 @@\n 3\n 4\n-5\n+five\n 6\n 7\n@@ -8,2 +8,3 @@\n 8\n 9\n+ten\n"
        );
    }

    #[test]
    fn line_endings_only() {
        let diff = line_diff("a\n", "a", "file", "export");
        assert!(diff.contains("differ only in line endings"), "{diff}");
    }
}
