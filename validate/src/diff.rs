//! A unified line diff, to show how a mocks file differs from the export.

use std::time::Duration;

use similar::TextDiff;

/// Lines of context around each change.
const CONTEXT: usize = 2;
/// At most this many diff lines are shown.
const MAX_LINES: usize = 120;
/// The diff algorithm gives up looking for the smallest diff after this long
/// (the diff is then larger than needed, but still right).
const TIMEOUT: Duration = Duration::from_secs(1);

/// A unified diff of `old` (labelled `old_label`) against `new`, with a few
/// lines of context and at most [`MAX_LINES`] lines (then a count of the
/// lines left out); empty when they are equal.
pub(crate) fn line_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    if old == new {
        return String::new();
    }
    if old.lines().eq(new.lines()) {
        return format!(
            "--- {old_label}\n+++ {new_label}\n(the texts differ only in line endings or the final newline)\n"
        );
    }
    let diff = TextDiff::configure().timeout(TIMEOUT).diff_lines(old, new);
    let mut unified = diff.unified_diff();
    unified.context_radius(CONTEXT);
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    let (mut shown, mut left_out) = (0, 0);
    for hunk in unified.iter_hunks() {
        if shown >= MAX_LINES {
            // The hunk's header and its lines.
            left_out += 1 + hunk.iter_changes().count();
            continue;
        }
        let text = hunk.to_string();
        for line in text.lines() {
            if shown < MAX_LINES {
                out.push_str(line);
                out.push('\n');
                shown += 1;
            } else {
                left_out += 1;
            }
        }
    }
    if left_out > 0 {
        out.push_str(&format!("… ({left_out} more diff lines)\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{line_diff, MAX_LINES};

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
            "--- file\n+++ export\n@@ -3,7 +3,8 @@\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n 9\n+ten\n"
        );
    }

    #[test]
    fn distant_changes_are_separate_hunks() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let new = "one\n2\n3\n4\n5\n6\n7\n8\n9\nten\n";
        assert_eq!(
            line_diff(old, new, "file", "export"),
            "--- file\n+++ export\n@@ -1,3 +1,3 @@\n-1\n+one\n 2\n 3\n@@ -8,3 +8,3 @@\n 8\n 9\n-10\n+ten\n"
        );
    }

    #[test]
    fn line_endings_only() {
        let diff = line_diff("a\n", "a", "file", "export");
        assert!(diff.contains("differ only in line endings"), "{diff}");
        let diff = line_diff("a\nb\n", "a\r\nb\r\n", "file", "export");
        assert!(diff.contains("differ only in line endings"), "{diff}");
    }

    #[test]
    fn long_diffs_are_cut() {
        let old: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        let new: String = (0..10_000)
            .map(|i| {
                if i % 10 == 0 {
                    format!("changed {i}\n")
                } else {
                    format!("line {i}\n")
                }
            })
            .collect();
        let diff = line_diff(&old, &new, "file", "export");
        // The two header lines, the shown lines and the count of the others.
        assert_eq!(diff.lines().count(), 2 + MAX_LINES + 1, "{diff}");
        assert!(diff.starts_with("--- file\n+++ export\n@@ -1,3 +1,3 @@\n-line 0\n+changed 0\n"));
        let last = diff.lines().last().unwrap();
        assert!(
            last.starts_with("… (") && last.ends_with(" more diff lines)"),
            "{last}"
        );
    }
}
