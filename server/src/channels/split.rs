//! Splitting a long text into parts a channel accepts.

/// Splits `text` into parts of at most `limit` characters (Unicode scalar values, which is
/// how the providers count), preferring a paragraph break, then a line break, then a space
/// inside the window; only a word longer than the window is cut, and then on a character
/// boundary. The separator at a cut is dropped; nothing else is changed.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        // Byte offset just past the `limit`-th character, or the whole rest when it fits.
        let Some((window_end, _)) = rest.char_indices().nth(limit) else {
            if !rest.trim().is_empty() || parts.is_empty() {
                parts.push(rest.to_string());
            }
            return parts;
        };
        let window = &rest[..window_end];
        let (cut, skip) = if let Some(i) = window.rfind("\n\n").filter(|&i| i > 0) {
            (i, 2)
        } else if let Some(i) = window.rfind('\n').filter(|&i| i > 0) {
            (i, 1)
        } else if let Some(i) = window.rfind(' ').filter(|&i| i > 0) {
            (i, 1)
        } else {
            (window_end, 0)
        };
        let part = &rest[..cut];
        if !part.trim().is_empty() {
            parts.push(part.to_string());
        }
        rest = &rest[cut + skip..];
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split("hello", 10), vec!["hello"]);
        assert_eq!(split("", 10), vec![""]);
    }

    #[test]
    fn prefers_paragraph_then_line_then_space() {
        assert_eq!(
            split("aaaa\n\nbbbb\ncc dd", 12),
            vec!["aaaa", "bbbb\ncc dd"]
        );
        assert_eq!(split("aaaa\nbbbb cccc", 10), vec!["aaaa", "bbbb cccc"]);
        assert_eq!(split("aaaa bbbb cccc", 10), vec!["aaaa bbbb", "cccc"]);
    }

    #[test]
    fn hard_cut_on_char_boundary() {
        let s = "é".repeat(25);
        let parts = split(&s, 10);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= 10));
        assert_eq!(parts.concat(), s);
    }

    #[test]
    fn every_part_fits() {
        let s = "word ".repeat(1000) + &"x".repeat(5000);
        for p in split(&s, 2000) {
            assert!(p.chars().count() <= 2000);
        }
    }
}
