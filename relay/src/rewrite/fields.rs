//! In-place editing of `Key: value` line blocks.
//!
//! Invitation bodies (`text/x-msmsgsinvite`), SLP start lines plus headers and SLP
//! `trans*body` bodies are all blocks of `Key: value` lines. The relay must change a few
//! values while keeping everything else exactly as the client sent it: header order, the case
//! of every key, unknown fields, trailing spaces (`CSeq: 0 `) and the line terminators (CRLF,
//! or a lone LF from a sloppy client). [`Block`] records where each line and value starts and
//! ends in the original bytes, and [`Edits`] renders a new block by copying every untouched
//! byte range verbatim and splicing in only the edited values.

/// One line of a block: byte offsets into the source.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// First byte of the line.
    start: usize,
    /// End of the line's content (before `\r\n` or `\n`).
    content_end: usize,
    /// End of the line including its terminator.
    end: usize,
    /// The value's byte range if the line is `Key: value`, trimmed of spaces and tabs.
    value: Option<(usize, usize)>,
    /// End of the key (the position of the colon) if the line is `Key: value`.
    key_end: Option<usize>,
}

/// A parsed block of lines over borrowed bytes.
#[derive(Debug)]
pub(crate) struct Block<'a> {
    src: &'a [u8],
    lines: Vec<Line>,
}

impl<'a> Block<'a> {
    /// Splits `src` into lines; a final line without terminator is kept as a line.
    pub(crate) fn parse(src: &'a [u8]) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        while start < src.len() {
            let (content_end, end) = match src[start..].iter().position(|&b| b == b'\n') {
                Some(rel) => {
                    let nl = start + rel;
                    let content_end = if nl > start && src[nl - 1] == b'\r' {
                        nl - 1
                    } else {
                        nl
                    };
                    (content_end, nl + 1)
                }
                None => (src.len(), src.len()),
            };
            let content = &src[start..content_end];
            let (key_end, value) = match content.iter().position(|&b| b == b':') {
                Some(colon) if colon > 0 => {
                    let mut vs = start + colon + 1;
                    while vs < content_end && matches!(src[vs], b' ' | b'\t') {
                        vs += 1;
                    }
                    let mut ve = content_end;
                    while ve > vs && matches!(src[ve - 1], b' ' | b'\t') {
                        ve -= 1;
                    }
                    (Some(start + colon), Some((vs, ve)))
                }
                _ => (None, None),
            };
            lines.push(Line {
                start,
                content_end,
                end,
                value,
                key_end,
            });
            start = end;
        }
        Self { src, lines }
    }

    /// Index of the first line whose key equals `key`, ignoring ASCII case.
    pub(crate) fn find(&self, key: &str) -> Option<usize> {
        self.lines.iter().position(|line| {
            line.key_end.is_some_and(|ke| {
                self.src[line.start..ke]
                    .trim_ascii()
                    .eq_ignore_ascii_case(key.as_bytes())
            })
        })
    }

    /// The trimmed value of line `idx`, if it is a `Key: value` line.
    pub(crate) fn value_at(&self, idx: usize) -> Option<&'a [u8]> {
        let (vs, ve) = self.lines.get(idx)?.value?;
        Some(&self.src[vs..ve])
    }

    /// The trimmed value of the first line with key `key`, as UTF-8.
    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        let idx = self.find(key)?;
        std::str::from_utf8(self.value_at(idx)?).ok()
    }

    /// The content (without terminator) of line `idx`.
    pub(crate) fn line(&self, idx: usize) -> Option<&'a [u8]> {
        let line = self.lines.get(idx)?;
        Some(&self.src[line.start..line.content_end])
    }

    /// Index of the last line that is not empty (the last field before the blank line).
    pub(crate) fn last_nonempty(&self) -> Option<usize> {
        self.lines
            .iter()
            .rposition(|line| line.content_end > line.start)
    }

    /// The terminator of line `idx` (`\r\n`, `\n`, or empty for an unterminated last line).
    fn terminator(&self, idx: usize) -> &'a [u8] {
        self.lines
            .get(idx)
            .map_or(&b""[..], |line| &self.src[line.content_end..line.end])
    }
}

/// What to do with one line.
#[derive(Debug, Default, Clone)]
struct LineEdit {
    set: Option<String>,
    remove: bool,
    insert_after: Vec<String>,
}

/// A set of value replacements, removals and insertions against one [`Block`].
#[derive(Debug)]
pub(crate) struct Edits<'b, 'a> {
    block: &'b Block<'a>,
    per_line: Vec<LineEdit>,
    changed: bool,
}

impl<'b, 'a> Edits<'b, 'a> {
    /// No edits yet.
    pub(crate) fn new(block: &'b Block<'a>) -> Self {
        Self {
            block,
            per_line: vec![LineEdit::default(); block.lines.len()],
            changed: false,
        }
    }

    /// Replaces the value of the first `key` line if it differs; returns the old value when
    /// something changed. Missing keys are not added.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Option<&'a str> {
        let idx = self.block.find(key)?;
        let old = self.block.value_at(idx)?;
        if old == value.as_bytes() {
            return None;
        }
        self.per_line[idx].set = Some(value.to_owned());
        self.changed = true;
        Some(std::str::from_utf8(old).unwrap_or("<non-utf8>"))
    }

    /// Removes every line with key `key`; returns how many were removed.
    pub(crate) fn remove(&mut self, key: &str) -> usize {
        let mut removed = 0;
        for (idx, line) in self.block.lines.iter().enumerate() {
            let matches = line.key_end.is_some_and(|ke| {
                self.block.src[line.start..ke]
                    .trim_ascii()
                    .eq_ignore_ascii_case(key.as_bytes())
            });
            if matches && !self.per_line[idx].remove {
                self.per_line[idx].remove = true;
                removed += 1;
            }
        }
        self.changed |= removed > 0;
        removed
    }

    /// Appends `Key: value` after the last non-empty line (before the closing blank line),
    /// using that line's terminator. Inserted lines keep their call order.
    pub(crate) fn append(&mut self, key: &str, value: &str) {
        let text = format!("{key}: {value}");
        match self.block.last_nonempty() {
            Some(idx) => self.per_line[idx].insert_after.push(text),
            None => {
                // An empty block: nothing to anchor to. Put the line in front of everything.
                if self.per_line.is_empty() {
                    self.per_line.push(LineEdit::default());
                }
                self.per_line[0].insert_after.push(text);
            }
        }
        self.changed = true;
    }

    /// Whether any edit was recorded.
    pub(crate) fn changed(&self) -> bool {
        self.changed
    }

    /// Renders the edited block. Untouched byte ranges are copied verbatim.
    pub(crate) fn render(&self) -> Vec<u8> {
        let src = self.block.src;
        let mut out = Vec::with_capacity(src.len() + 64);
        if self.block.lines.is_empty() {
            for edit in &self.per_line {
                for text in &edit.insert_after {
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
            return out;
        }
        for (idx, (line, edit)) in self.block.lines.iter().zip(&self.per_line).enumerate() {
            if !edit.remove {
                match (&edit.set, line.value) {
                    (Some(value), Some((vs, ve))) => {
                        out.extend_from_slice(&src[line.start..vs]);
                        if vs == ve && line.key_end.is_some_and(|ke| ke + 1 == vs) {
                            // `Key:` with nothing after the colon: add the usual space.
                            out.push(b' ');
                        }
                        out.extend_from_slice(value.as_bytes());
                        out.extend_from_slice(&src[ve..line.end]);
                    }
                    _ => out.extend_from_slice(&src[line.start..line.end]),
                }
            }
            if !edit.insert_after.is_empty() {
                let mut term = self.block.terminator(idx);
                if term.is_empty() {
                    // The anchor line was unterminated: terminate it before adding lines.
                    term = b"\r\n";
                    out.extend_from_slice(term);
                }
                for (n, text) in edit.insert_after.iter().enumerate() {
                    out.extend_from_slice(text.as_bytes());
                    let last = n + 1 == edit.insert_after.len();
                    if !last || !self.block.terminator(idx).is_empty() {
                        out.extend_from_slice(term);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_block_renders_identically() {
        let src = b"A: 1\r\nb:2 \nNoColon\r\n\r\nC: x";
        let block = Block::parse(src);
        assert_eq!(Edits::new(&block).render(), src);
    }

    #[test]
    fn set_keeps_key_case_spacing_and_terminators() {
        let src = b"ip-address:  10.0.0.1 \r\nPort: 6891\n\r\n";
        let block = Block::parse(src);
        let mut edits = Edits::new(&block);
        assert_eq!(edits.set("IP-Address", "203.0.113.5"), Some("10.0.0.1"));
        assert_eq!(edits.set("Port", "6891"), None);
        assert_eq!(
            edits.render(),
            b"ip-address:  203.0.113.5 \r\nPort: 6891\n\r\n".to_vec()
        );
    }

    #[test]
    fn append_goes_before_the_blank_line_and_remove_drops_lines() {
        let src = b"A: 1\r\nB: 2\r\nB: 3\r\n\r\n";
        let block = Block::parse(src);
        let mut edits = Edits::new(&block);
        assert_eq!(edits.remove("b"), 2);
        edits.append("Connectivity", "N");
        assert_eq!(edits.render(), b"A: 1\r\nConnectivity: N\r\n\r\n".to_vec());
    }

    #[test]
    fn empty_value_gets_a_space_after_the_colon() {
        let block = Block::parse(b"IP-Address:\r\nPort:  \r\n");
        let mut edits = Edits::new(&block);
        edits.set("IP-Address", "1.2.3.4");
        edits.set("Port", "1");
        assert_eq!(
            edits.render(),
            b"IP-Address: 1.2.3.4\r\nPort:  1\r\n".to_vec()
        );
    }

    #[test]
    fn value_with_colon_keeps_its_key() {
        let block = Block::parse(b"Request-Data: IP-Address:\r\n");
        assert_eq!(block.get("request-data"), Some("IP-Address:"));
    }
}
