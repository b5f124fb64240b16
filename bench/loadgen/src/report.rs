//! The one JSON object each run prints. Values are rendered as they are added, in order.

pub struct Report {
    fields: Vec<(String, String)>,
}

impl Report {
    pub fn new(scenario: &str) -> Report {
        let mut r = Report { fields: Vec::new() };
        r.text("scenario", scenario);
        r
    }

    pub fn num(&mut self, key: &str, value: f64) {
        let v = if value.is_finite() {
            let s = format!("{value:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s.is_empty() || s == "-" {
                "0".to_string()
            } else {
                s.to_string()
            }
        } else {
            "null".to_string()
        };
        self.fields.push((key.to_string(), v));
    }

    pub fn opt_num(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(v) => self.num(key, v),
            None => self.fields.push((key.to_string(), "null".to_string())),
        }
    }

    pub fn int(&mut self, key: &str, value: u64) {
        self.fields.push((key.to_string(), value.to_string()));
    }

    pub fn boolean(&mut self, key: &str, value: bool) {
        self.fields.push((key.to_string(), value.to_string()));
    }

    pub fn text(&mut self, key: &str, value: &str) {
        self.fields.push((key.to_string(), quote(value)));
    }

    pub fn render(&self) -> String {
        let body: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{}: {v}", quote(k)))
            .collect();
        format!("{{{}}}", body.join(", "))
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_in_order() {
        let mut r = Report::new("x");
        r.num("a", 1.5);
        r.num("b", 2.0);
        r.num("c", f64::NAN);
        r.int("d", 7);
        r.boolean("e", true);
        r.text("f", "q\"\n");
        r.opt_num("g", None);
        assert_eq!(
            r.render(),
            r#"{"scenario": "x", "a": 1.5, "b": 2, "c": null, "d": 7, "e": true, "f": "q\"\n", "g": null}"#
        );
    }

    #[test]
    fn small_numbers_keep_their_digits() {
        let mut r = Report { fields: Vec::new() };
        r.num("a", 0.000123);
        r.num("b", 0.0);
        assert_eq!(r.render(), r#"{"a": 0.000123, "b": 0}"#);
    }
}
