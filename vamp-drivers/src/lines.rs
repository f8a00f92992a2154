//! Lines out of a byte stream that comes in chunks (a process's pipes, Docker's log frames): a
//! chunk may end inside a line, and a line may be cut at a length limit.

/// Splits chunks into lines; what follows a line's limit is dropped up to its end.
#[derive(Debug)]
pub(crate) struct Splitter {
    partial: Vec<u8>,
    limit: usize,
}

impl Default for Splitter {
    /// No limit.
    fn default() -> Self {
        Splitter::with_limit(usize::MAX)
    }
}

impl Splitter {
    /// Lines kept to their first `limit` bytes.
    pub(crate) fn with_limit(limit: usize) -> Self {
        Splitter {
            partial: Vec::new(),
            limit,
        }
    }

    /// The complete lines in `chunk` (with what came before it), without their `\r\n`/`\n`.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                lines.push(Self::text(&std::mem::take(&mut self.partial)));
            } else if self.partial.len() < self.limit {
                self.partial.push(b);
            }
        }
        lines
    }

    /// What is left: a last line without its end.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| Self::text(&std::mem::take(&mut self.partial)))
    }

    fn text(line: &[u8]) -> String {
        String::from_utf8_lossy(line)
            .trim_end_matches('\r')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Splitter;

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let mut s = Splitter::default();
        assert_eq!(s.push(b"one\ntw"), ["one"]);
        assert_eq!(s.push(b"o\r\nthr"), ["two"]);
        assert_eq!(s.push(b"ee"), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("three"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn a_line_past_the_limit_is_cut_and_the_next_one_is_whole() {
        let mut s = Splitter::with_limit(3);
        assert_eq!(s.push(b"abcdef"), Vec::<String>::new());
        assert_eq!(s.push(b"gh\nxy\n"), ["abc", "xy"]);
    }
}
