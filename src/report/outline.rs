//! The outline of a template's text: its lines, and where each section (`Resources`,
//! `Outputs`…) and each member of a section (a resource, an output…) starts.
//!
//! A template's text is cut into lines once, for both users: the review's [`super::diff`]
//! matches two templates segment by segment, and the [`super::sarif::Locator`] indexes the
//! sections and members it names. A text not in CDK's format (one-space indent) has few
//! segments; the diff then compares it as a whole, and the locator finds nothing in it.

/// What a segment is matched by: the key line of its section and its own key line (or, for
/// the closing bracket of a section, the section's key line and `""`; for a section's first
/// line, the section's key line and nothing).
pub(crate) type Key<'a> = (&'a str, Option<&'a str>);

/// Lines `start..end` of a text, and their key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    pub key: Key<'a>,
    pub start: usize,
    pub end: usize,
}

/// A text cut into lines, remembering whether the last one ends with a line break, and its
/// segments.
#[derive(Debug, Clone)]
pub(crate) struct Outline<'a> {
    pub text: &'a str,
    pub lines: Vec<&'a str>,
    pub final_newline: bool,
    pub segments: Vec<Segment<'a>>,
}

impl<'a> Outline<'a> {
    pub fn new(text: &'a str) -> Outline<'a> {
        let final_newline = text.ends_with('\n');
        let body = if final_newline {
            &text[..text.len() - 1]
        } else {
            text
        };
        let lines: Vec<&str> = if text.is_empty() {
            Vec::new()
        } else {
            // Sized for CDK's format, about 30 bytes a line, so the list is not copied as it
            // grows.
            let mut lines = Vec::with_capacity(body.len() / 24 + 1);
            lines.extend(super::split_lines(body));
            lines
        };
        let segments = segments(&lines);
        Outline {
            text,
            lines,
            final_newline,
            segments,
        }
    }

    /// Whether line `i` is the last and lacks a line break.
    pub fn unterminated(&self, i: usize) -> bool {
        !self.final_newline && i + 1 == self.lines.len()
    }

    /// The text of lines `range`, from the start of the first to the end of the last (the
    /// line breaks between them included); empty for no lines.
    pub fn span(&self, range: std::ops::Range<usize>) -> &'a str {
        match range.end.checked_sub(1) {
            Some(last) if !range.is_empty() => {
                let end = self.byte_of(last) + self.lines[last].len();
                &self.text[self.byte_of(range.start)..end]
            }
            _ => "",
        }
    }

    /// The byte of the text where line `i` starts.
    pub fn byte_of(&self, i: usize) -> usize {
        self.lines[i].as_ptr() as usize - self.text.as_ptr() as usize
    }
}

/// Cuts a template in CDK's format into segments: each starts at a key of the first level (a
/// section) or the second (a resource, parameter, output…), or at the bracket that closes a
/// section.
fn segments<'a>(lines: &[&'a str]) -> Vec<Segment<'a>> {
    let mut out: Vec<Segment<'a>> = Vec::new();
    let mut section: &'a str = "";
    for (i, &line) in lines.iter().enumerate() {
        let (depth, first) = match line.as_bytes() {
            [b' ', b' ', b' ', ..] => (3, None),
            [b' ', b' ', c, ..] => (2, Some(*c)),
            [b' ', c, ..] => (1, Some(*c)),
            [c, ..] => (0, Some(*c)),
            [] => (0, None),
        };
        let key = match (depth, first) {
            (1, Some(b'"')) => {
                section = line;
                Some((line, None))
            }
            (2, Some(b'"')) => Some((section, Some(line))),
            (0 | 1, Some(b'}' | b']')) => Some((section, Some(""))),
            _ => None,
        };
        match key {
            Some(key) => {
                if let Some(last) = out.last_mut() {
                    last.end = i;
                }
                out.push(Segment {
                    key,
                    start: i,
                    end: lines.len(),
                });
            }
            None if out.is_empty() => out.push(Segment {
                key: ("", None),
                start: 0,
                end: lines.len(),
            }),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_start_at_sections_members_and_closing_brackets() {
        let text = "{\n \"Resources\": {\n  \"A\": {\n   \"Type\": \"x\"\n  },\n  \"B\": 1\n },\n \"Outputs\": {}\n}";
        let o = Outline::new(text);
        assert_eq!(o.lines.len(), 9);
        let keys: Vec<(usize, usize, Key)> =
            o.segments.iter().map(|s| (s.start, s.end, s.key)).collect();
        let resources = " \"Resources\": {";
        assert_eq!(
            keys,
            [
                (0, 1, ("", None)),
                (1, 2, (resources, None)),
                (2, 5, (resources, Some("  \"A\": {"))),
                (5, 6, (resources, Some("  \"B\": 1"))),
                (6, 7, (resources, Some(""))),
                (7, 8, (" \"Outputs\": {}", None)),
                (8, 9, (" \"Outputs\": {}", Some(""))),
            ]
        );
        for (i, line) in text.split('\n').enumerate() {
            assert!(text[o.byte_of(i)..].starts_with(line));
        }
        assert!(o.unterminated(8) && !o.unterminated(7));
        for (a, b) in [(0, 0), (0, 1), (2, 5), (7, 9), (0, 9)] {
            assert_eq!(o.span(a..b), o.lines[a..b].join("\n"), "{a}..{b}");
        }
        assert!(!Outline::new("a\n").unterminated(0));
    }
}
