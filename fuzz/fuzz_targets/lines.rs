//! Splitting program output into messages, and the `--passstderr` JSON envelope.
//! Properties: no message holds a newline; with a limit no message is longer; without a
//! limit the messages joined with `\n` give back the output (less one `\r` per line end);
//! the envelope is valid JSON whose `data` is the output with each invalid UTF-8 byte
//! replaced by U+FFFD (Go's rule).
#![no_main]

use libfuzzer_sys::fuzz_target;
use websocketd::process::lines::{json_envelope, LineBuffer};

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let limit = (seed & 0x80 != 0).then_some(usize::from(seed & 0x3f) + 1);
    let chunk = usize::from(seed & 0x0f) + 1;
    let mut buffer = LineBuffer::default();
    let mut messages = Vec::new();
    for piece in data.chunks(chunk) {
        buffer.buf.extend_from_slice(piece);
        while let Some(line) = buffer.next_line(limit) {
            messages.push(line.bytes.to_vec());
        }
        if let Some(max) = limit {
            assert!(buffer.buf.len() < max + chunk + 1);
        }
    }
    let rest = buffer.take_rest().map(|line| line.bytes.to_vec());
    for message in &messages {
        assert!(!message.contains(&b'\n'));
        if let Some(max) = limit {
            assert!(message.len() <= max);
        }
    }
    if limit.is_none() {
        let mut expected: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        let last = expected.pop().unwrap_or_default();
        for line in &mut expected {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        assert_eq!(messages, expected);
        // Unterminated output is a last message, even if only a `\r` (as Go's scanner).
        let had_rest = !last.is_empty();
        let mut last = last;
        if last.last() == Some(&b'\r') {
            last.pop();
        }
        assert_eq!(rest, had_rest.then_some(last));
    }

    let envelope = json_envelope("stderr", data);
    let value: serde_json::Value = serde_json::from_slice(&envelope).expect("valid JSON");
    assert_eq!(value["stream"], "stderr");
    let mut expected = String::new();
    for chunk in data.utf8_chunks() {
        expected.push_str(chunk.valid());
        expected.extend(std::iter::repeat_n('\u{fffd}', chunk.invalid().len()));
    }
    assert_eq!(value["data"].as_str(), Some(expected.as_str()));
    assert!(!envelope.windows(1).any(|w| w[0] == b'<' || w[0] == b'>'));
});
