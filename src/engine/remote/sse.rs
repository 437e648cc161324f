//! A server-sent-events reader for streamed completions.
//!
//! Bytes arrive in TCP-sized pieces that need not line up with events: one event may be split
//! across reads (even inside a UTF-8 character or between `\r` and `\n`), and one read may hold
//! several events. Lines end in `\n`, `\r\n` or `\r`; an empty line ends an event; lines starting
//! with `:` are comments (keep-alives); only the `data` field matters here (several `data` lines of
//! one event are joined with `\n`, as the SSE standard says).

/// Incremental SSE parser: feed bytes, take complete events' data.
#[derive(Debug, Default)]
pub(crate) struct SseReader {
    /// Bytes of the line being read (kept as bytes so a split character is joined before decoding).
    line: Vec<u8>,
    /// `data` lines of the event being read.
    data: Vec<String>,
    /// The previous byte was `\r`: a following `\n` belongs to the same line end.
    after_cr: bool,
}

impl SseReader {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream; returns the data of every event they complete, in order.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    /// The stream ended: an event not terminated by an empty line is still delivered (servers that
    /// close right after the last `data:` line exist).
    pub(crate) fn finish(&mut self) -> Option<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        self.end_line(&mut events);
        events.pop()
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(std::mem::take(&mut self.data).join("\n"));
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        if field == "data" {
            self.data.push(value.to_string());
        }
        // `event`, `id` and `retry` carry nothing the completions API uses.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<String> {
        let mut r = SseReader::new();
        let mut out: Vec<String> = chunks.iter().flat_map(|c| r.push(c)).collect();
        out.extend(r.finish());
        out
    }

    #[test]
    fn events_split_and_merged_across_reads() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let want = vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"];
        assert_eq!(all(&[stream]), want, "several events in one read");
        for cut in 1..stream.len() {
            assert_eq!(all(&[&stream[..cut], &stream[cut..]]), want, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(all(&bytes), want, "one byte per read");
    }

    #[test]
    fn crlf_and_cr_line_ends_even_split_between_cr_and_lf() {
        let stream = b"data: one\r\n\r\ndata: two\r\rdata: three\n\n";
        let want = vec!["one", "two", "three"];
        assert_eq!(all(&[stream]), want);
        for cut in 1..stream.len() {
            assert_eq!(all(&[&stream[..cut], &stream[cut..]]), want, "split at {cut}");
        }
    }

    #[test]
    fn comments_keepalives_and_other_fields_are_skipped() {
        let stream = b": ping\n\nevent: message\nid: 7\nretry: 100\ndata: x\n\n:\n\n";
        assert_eq!(all(&[stream]), vec!["x"]);
    }

    #[test]
    fn multi_line_data_is_joined_and_no_space_variant_works() {
        assert_eq!(all(&[b"data:a\ndata: b\n\n"]), vec!["a\nb"]);
    }

    #[test]
    fn a_character_split_across_reads_is_rejoined() {
        let stream = "data: {\"text\":\"5 €\"}\n\n".as_bytes();
        let euro = stream.iter().position(|&b| b == 0xE2).unwrap();
        assert_eq!(all(&[&stream[..euro + 1], &stream[euro + 1..]]), vec!["{\"text\":\"5 €\"}"]);
    }

    #[test]
    fn an_unterminated_last_event_is_delivered_at_the_end() {
        assert_eq!(all(&[b"data: a\n\ndata: b"]), vec!["a", "b"]);
        assert_eq!(all(&[b"data: a\n\ndata: b\n"]), vec!["a", "b"]);
        assert_eq!(all(&[b"data: a\n\n"]), vec!["a"]);
    }
}
