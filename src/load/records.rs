//! Counting CSV records in a byte stream read in chunks: line ends outside
//! quoted fields, with the quote state carried from chunk to chunk.

/// Counts the records of an RFC 4180 stream fed in pieces.
#[derive(Clone, Debug, Default)]
pub struct RecordCounter {
    records: u64,
    in_quotes: bool,
    /// The last byte fed ended a record, or nothing was fed yet.
    at_record_start: bool,
    fed: bool,
}

impl RecordCounter {
    /// Feeds the next piece; returns the records it completed.
    pub fn feed(&mut self, bytes: &[u8]) -> u64 {
        let mut records = 0;
        let mut in_quotes = self.in_quotes;
        // A doubled quote inside a quoted field toggles twice, which is
        // what it should do: it leaves the field quoted.
        for &b in bytes {
            match b {
                b'"' => in_quotes = !in_quotes,
                b'\n' if !in_quotes => records += 1,
                _ => {}
            }
        }
        self.in_quotes = in_quotes;
        self.records += records;
        if let Some(&last) = bytes.last() {
            self.fed = true;
            self.at_record_start = last == b'\n' && !in_quotes;
        }
        records
    }

    /// Data records counted so far plus a final unterminated one, without
    /// the header when `header` says the stream starts with one.
    pub fn records_after_header(&self, header: bool) -> u64 {
        let total = self.records + self.finish();
        total.saturating_sub(u64::from(header))
    }

    /// Records in a final line without a line end: 1 when the stream did
    /// not end with one, else 0.
    pub fn finish(&self) -> u64 {
        u64::from(self.fed && !self.at_record_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str, piece: usize) -> u64 {
        let mut counter = RecordCounter::default();
        let mut total = 0;
        for chunk in text.as_bytes().chunks(piece) {
            total += counter.feed(chunk);
        }
        total + counter.finish()
    }

    #[test]
    fn quoted_line_ends_and_quotes_are_inside_records() {
        let text = "a,b\n\"x\ny\",\"say \"\"hi\"\"\"\n\"\n\",2\nlast,row";
        for piece in 1..=text.len() {
            assert_eq!(count(text, piece), 4, "piece {piece}");
        }
        assert_eq!(count("a\nb\n", 3), 2);
        assert_eq!(count("", 3), 0);
    }
}
