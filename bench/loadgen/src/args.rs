//! `--name value` / `--name=value` options; each subcommand reads the ones it knows and
//! `Args::finish` rejects the rest.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::util::{Error, Url};

pub struct Args {
    values: BTreeMap<String, String>,
    used: RefCell<Vec<String>>,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, Error> {
        let mut values = BTreeMap::new();
        let mut i = 0;
        while i < argv.len() {
            let Some(flag) = argv[i].strip_prefix("--") else {
                return Err(Error::new(format!("unexpected argument {:?}", argv[i])));
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    i += 1;
                    let Some(v) = argv.get(i) else {
                        return Err(Error::new(format!("--{flag} needs a value")));
                    };
                    (flag.to_string(), v.clone())
                }
            };
            values.insert(name, value);
            i += 1;
        }
        Ok(Args {
            values,
            used: RefCell::new(Vec::new()),
        })
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.used.borrow_mut().push(name.to_string());
        self.values.get(name).map(String::as_str)
    }

    /// `--url`, with the TLS settings from `--ca` for a `wss://` URL.
    pub fn url(&self) -> Result<Url, Error> {
        let ca = self.raw("ca");
        match self.raw("url") {
            Some(u) => Url::parse(u)?.with_ca(ca),
            None => Err(Error::new("--url is required")),
        }
    }

    /// `--url` for the HTTP/2 scenarios: a `wss://` URL's TLS client offers only `h2`.
    pub fn h2_url(&self) -> Result<Url, Error> {
        let ca = self.raw("ca");
        match self.raw("url") {
            Some(u) => Url::parse(u)?.with_ca_alpn(ca, &[b"h2"]),
            None => Err(Error::new("--url is required")),
        }
    }

    pub fn u64(&self, name: &str, default: u64) -> Result<u64, Error> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Error::new(format!("--{name}: not a whole number: {v:?}"))),
        }
    }

    pub fn usize(&self, name: &str, default: usize) -> Result<usize, Error> {
        Ok(self.u64(name, default as u64)? as usize)
    }

    pub fn f64(&self, name: &str, default: f64) -> Result<f64, Error> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                _ => Err(Error::new(format!("--{name}: not a number >= 0: {v:?}"))),
            },
        }
    }

    /// Fails on any option that no accessor asked for (a typo would otherwise silently
    /// run the default workload).
    pub fn finish(&self) -> Result<(), Error> {
        let used = self.used.borrow();
        for name in self.values.keys() {
            if !used.iter().any(|u| u == name) {
                return Err(Error::new(format!("unknown option --{name}")));
            }
        }
        Ok(())
    }
}
