//! UTF-8 validation of a text message that arrives in pieces: each piece is checked as it
//! arrives, so a message that can never become valid fails at once (close 1007) instead of
//! after the whole message has been buffered.

/// The state between pieces: the bytes of a character cut by a piece boundary.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: [u8; 4],
    pending_len: usize,
}

/// The text is not UTF-8 and no continuation can make it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Stream {
    /// Checks the next piece; `last` marks the end of the message.
    pub fn feed(&mut self, mut data: &[u8], last: bool) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let want = char_width(self.pending[0]);
            let take = (want - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            match std::str::from_utf8(&self.pending[..self.pending_len]) {
                Ok(_) => self.pending_len = 0,
                Err(err) if err.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    // Still a valid beginning of a character, cut again.
                    return if last { Err(InvalidUtf8) } else { Ok(()) };
                }
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => {}
            Err(err) if err.error_len().is_some() => return Err(InvalidUtf8),
            Err(err) => {
                let rest = &data[err.valid_up_to()..];
                self.pending[..rest.len()].copy_from_slice(rest);
                self.pending_len = rest.len();
            }
        }
        if last && self.pending_len > 0 {
            return Err(InvalidUtf8);
        }
        Ok(())
    }
}

/// The length of the character a leading byte starts (1 for anything else: from_utf8
/// has already refused it).
fn char_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_everywhere(text: &[u8]) -> Vec<Result<(), InvalidUtf8>> {
        (0..=text.len())
            .map(|cut| {
                let mut stream = Utf8Stream::default();
                stream.feed(&text[..cut], false)?;
                stream.feed(&text[cut..], true)
            })
            .collect()
    }

    #[test]
    fn valid_text_passes_whatever_the_cuts() {
        let text = "aé€𝄞z".as_bytes();
        assert!(split_everywhere(text).iter().all(Result::is_ok));
        let mut stream = Utf8Stream::default();
        for byte in text {
            stream.feed(std::slice::from_ref(byte), false).unwrap();
        }
        stream.feed(&[], true).unwrap();
    }

    #[test]
    fn invalid_text_fails_whatever_the_cuts() {
        for bad in [
            &b"a\xffb"[..],
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"ab\xe2\x82",
        ] {
            assert!(split_everywhere(bad).iter().all(Result::is_err), "{bad:?}");
        }
    }

    #[test]
    fn fails_before_the_message_ends() {
        let mut stream = Utf8Stream::default();
        stream.feed(b"ok \xce", false).unwrap();
        assert_eq!(
            stream.feed(b"\xba\xe1\xbd\xb9\xf4\x90", false),
            Err(InvalidUtf8)
        );
    }
}
