//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::{Display, Write};

use crate::{Counter, Family, Gauge, Histogram};

/// Builds one scrape's text.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn finish(self) -> String {
        self.out
    }

    /// `# HELP` and `# TYPE` lines; `kind` is `counter`, `gauge` or `histogram`.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    pub fn counter(&mut self, name: &str, help: &str, c: &Counter) {
        self.counter_value(name, help, c.get());
    }

    pub fn counter_value(&mut self, name: &str, help: &str, v: impl Display) {
        self.header(name, "counter", help);
        self.sample(name, &[], v);
    }

    pub fn gauge(&mut self, name: &str, help: &str, g: &Gauge) {
        self.gauge_value(name, help, g.get());
    }

    pub fn gauge_value(&mut self, name: &str, help: &str, v: impl Display) {
        self.header(name, "gauge", help);
        self.sample(name, &[], v);
    }

    pub fn counter_family<const L: usize>(
        &mut self,
        name: &str,
        help: &str,
        f: &Family<Counter, L>,
    ) {
        self.header(name, "counter", help);
        for m in f.members() {
            let labels: Vec<(&str, &str)> = f
                .label_names()
                .iter()
                .copied()
                .zip(m.values.iter().map(String::as_str))
                .collect();
            self.sample(name, &labels, m.get());
        }
    }

    pub fn histogram_family<const L: usize>(
        &mut self,
        name: &str,
        help: &str,
        f: &Family<Histogram, L>,
    ) {
        self.header(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let sum_name = format!("{name}_sum");
        let count_name = format!("{name}_count");
        for m in f.members() {
            let mut labels: Vec<(&str, &str)> = f
                .label_names()
                .iter()
                .copied()
                .zip(m.values.iter().map(String::as_str))
                .collect();
            // One snapshot per member: `count` is read after the buckets so that +Inf is never
            // below the last finite bucket.
            let (buckets, sum) = m.snapshot();
            let count = m.count();
            for (le, n) in buckets {
                let le = le.to_string();
                let mut with_le = labels.clone();
                with_le.push(("le", &le));
                self.sample(&bucket, &with_le, n);
            }
            labels.push(("le", "+Inf"));
            self.sample(&bucket, &labels, count);
            labels.pop();
            self.sample(&sum_name, &labels, sum);
            self.sample(&count_name, &labels, count);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn families_render_in_the_text_format() {
        let c: Family<Counter, 2> = Family::new(["route", "status"]);
        c.inc(["/v1/agents/{id}", "200"]);
        c.inc(["/v1/agents/{id}", "200"]);
        c.inc(["say \"hi\"\n", "500"]);
        let h: Family<Histogram, 1> = Family::new(["route"]);
        h.observe(["/x"], Duration::from_millis(2));
        let mut e = Exposition::new();
        e.counter_family("oma_requests_total", "Requests.", &c);
        e.histogram_family("oma_seconds", "Latency.", &h);
        let text = e.finish();
        assert!(
            text.contains("# TYPE oma_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("oma_requests_total{route=\"/v1/agents/{id}\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("oma_requests_total{route=\"say \\\"hi\\\"\\n\",status=\"500\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("oma_seconds_bucket{route=\"/x\",le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("oma_seconds_bucket{route=\"/x\",le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("oma_seconds_bucket{route=\"/x\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("oma_seconds_count{route=\"/x\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("oma_seconds_sum{route=\"/x\"} 0.002\n"),
            "{text}"
        );
    }
}
