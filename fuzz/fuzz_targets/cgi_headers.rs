//! A CGI script's header block, as its output arrives in arbitrary pieces. Properties:
//! the outcome does not depend on how the output was cut (the body start handed back is
//! what followed the block in the pieces read so far); the buffer never grows past the
//! block limit; a response without Content-Type has a Status or Location.
#![no_main]

use libfuzzer_sys::fuzz_target;
use websocketd::cgi::headers::{HeadError, HeadReader, Progress, MAX_BLOCK};

/// Feeds `data` cut at `cuts`; returns the outcome and how much of `data` was fed.
fn feed(data: &[u8], cuts: &[usize]) -> (Result<Progress, HeadError>, usize) {
    let mut reader = HeadReader::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let end = cut.clamp(start, data.len());
        match reader.push(&data[start..end]) {
            Ok(Progress::More) => start = end,
            other => return (other, end),
        }
    }
    (Ok(Progress::More), data.len())
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let (whole, _) = feed(data, &[]);
    let step = usize::from(seed).max(1);
    let cuts: Vec<usize> = (1..data.len()).step_by(step).collect();
    let (pieces, fed) = feed(data, &cuts);
    match (&whole, &pieces) {
        (
            Ok(Progress::Done { head, rest }),
            Ok(Progress::Done {
                head: head_pieces,
                rest: rest_pieces,
            }),
        ) => {
            assert_eq!(head, head_pieces);
            let block = data.len() - rest.len();
            assert_eq!(rest_pieces[..], data[block..fed]);
        }
        _ => assert_eq!(whole, pieces),
    }
    match whole {
        Ok(Progress::Done { head, rest }) => {
            assert!(data.ends_with(&rest));
            assert!(data.len() - rest.len() <= MAX_BLOCK);
            let has = |name: &str| head.headers.iter().any(|(n, _)| n.as_str() == name);
            // `Status` is taken out of the headers: look for it in the block itself.
            let block = &data[..data.len() - rest.len()];
            let status_line = block.split(|&b| b == b'\n').any(|line| {
                line.len() >= 7 && line[..7].eq_ignore_ascii_case(b"status:")
            });
            if !has("content-type") {
                assert!(has("location") || status_line, "{block:?}");
            }
        }
        Ok(Progress::More) => assert!(data.len() <= MAX_BLOCK + 2),
        Err(err) => assert!(!err.message().is_empty()),
    }
});
