//! The spawner helper's request codec. Properties: arbitrary bytes never make the decoder
//! allocate beyond the input's size or panic; whatever decodes re-encodes to a record that
//! decodes to the same request; a request built from the input round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use websocketd::process::pty::Streams;
use websocketd::process::spawner::{decode, encode, Request};

fuzz_target!(|data: &[u8]| {
    if let Some(request) = decode(data) {
        let encoded = encode(&request);
        assert_eq!(
            encoded.len() - 4,
            u32::from_le_bytes(encoded[..4].try_into().unwrap()) as usize
        );
        assert_eq!(decode(&encoded[4..]), Some(request));
    }
    // Build a request from the bytes: fields separated by NUL.
    let mut fields = data
        .split(|&b| b == 0)
        .map(|f| OsString::from_vec(f.to_vec()));
    let program = fields.next().unwrap_or_default();
    let flags = data.first().copied().unwrap_or(0);
    let arg0 = (flags & 1 != 0).then(|| fields.next().unwrap_or_default());
    let cwd = (flags & 2 != 0).then(|| fields.next().unwrap_or_default());
    let cgroup = (flags & 8 != 0).then(|| fields.next().unwrap_or_default());
    let rest: Vec<OsString> = fields.collect();
    let (args, env_flat) = rest.split_at(rest.len() / 2);
    let env = env_flat
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
        .collect();
    let request = Request {
        program,
        arg0,
        args: args.to_vec(),
        env,
        cwd,
        capture_stderr: flags & 4 != 0,
        ptys: Streams::decode((flags >> 4) % 3).unwrap_or_default(),
        cgroup,
    };
    let encoded = encode(&request);
    assert_eq!(decode(&encoded[4..]), Some(request));
    assert_eq!(decode(&encoded[4..encoded.len() - 1]), None);
});
