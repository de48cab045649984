//! `GET /metrics`: one set of numbers, two formats. The families are built
//! once per scrape from the snapshot and the worker reports; then
//! `Accept: application/openmetrics-text` gets OpenMetrics 1.0 written by
//! `prometheus-client`, and anything else gets the Prometheus text format
//! 0.0.4 from [`encode_text`], where a counter's `# HELP`/`# TYPE` lines
//! name it with its `_total` suffix (what `promtool check metrics` and the
//! Prometheus text parsers expect).
//!
//! Nothing here runs on a worker: the request path only bumps plain cells.

use std::fmt::Write as _;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

use crate::worker::{HistogramReport, BUCKET_BOUNDS_US};

/// Label pairs of one sample, in order.
pub type Labels = Vec<(String, String)>;

/// What a family measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Latencies in seconds.
    Histogram,
    /// A constant 1 whose labels are the information (`limpet_build_info`).
    Info,
}

/// One sample's value.
#[derive(Debug, Clone)]
pub enum Value {
    Count(u64),
    Gauge(f64),
    Histogram(HistogramReport),
    Info,
}

/// A metric family: its name without the `_total` of counters or the
/// `_info` of info metrics (OpenMetrics adds those to the samples).
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<(Labels, Value)>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample; its labels are given as `&str` pairs.
    pub fn add(&mut self, labels: &[(&str, &str)], value: Value) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.push((labels, value));
    }

    pub fn count(&mut self, labels: &[(&str, &str)], n: u64) {
        self.add(labels, Value::Count(n));
    }

    pub fn gauge(&mut self, labels: &[(&str, &str)], v: f64) {
        self.add(labels, Value::Gauge(v));
    }
}

/// The histogram's buckets as both encoders want them: cumulative, with
/// upper bounds in seconds, `+Inf` last.
fn cumulative(h: &HistogramReport) -> Vec<(f64, u64)> {
    let mut seen = 0u64;
    bounds()
        .zip(h.buckets)
        .map(|(bound, n)| {
            seen = seen.wrapping_add(n);
            (bound, seen)
        })
        .collect()
}

/// The buckets' upper bounds in seconds, `+Inf` last.
fn bounds() -> impl Iterator<Item = f64> {
    BUCKET_BOUNDS_US
        .iter()
        .map(|us| *us as f64 / 1e6)
        .chain([f64::INFINITY])
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// The families as a `prometheus-client` collector, for OpenMetrics.
#[derive(Debug)]
struct Collected(Vec<Family>);

impl prometheus_client::collector::Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let metric_type = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
                Kind::Info => MetricType::Info,
            };
            let mut descriptor =
                encoder.encode_descriptor(family.name, family.help, None, metric_type)?;
            for (labels, value) in &family.samples {
                let labels = escaped(labels);
                if let Value::Info = value {
                    // An info metric's labels are its value.
                    descriptor.encode_info(&labels)?;
                    continue;
                }
                Sample(value).encode(descriptor.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Label values escaped as OpenMetrics asks (`\\`, `\"`, `\n`):
/// prometheus-client 0.22 writes them as given (a server named `a"b`
/// would end its label early; `openmetrics_has_the_same_numbers` checks).
fn escaped(labels: &Labels) -> Labels {
    labels
        .iter()
        .map(|(k, v)| {
            let v = if v.contains(['\\', '"', '\n']) {
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// One value, as `prometheus-client` encodes a metric.
struct Sample<'a>(&'a Value);

impl EncodeMetric for Sample<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            Value::Count(n) => encoder.encode_counter::<(), u64, u64>(n, None),
            Value::Gauge(v) => encoder.encode_gauge(v),
            Value::Histogram(h) => {
                // prometheus-client adds the buckets up itself.
                let buckets: Vec<(f64, u64)> = bounds().zip(h.buckets).collect();
                encoder.encode_histogram::<()>(seconds(h.sum_us), h.count(), &buckets, None)
            }
            Value::Info => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        match self.0 {
            Value::Count(_) => MetricType::Counter,
            Value::Gauge(_) => MetricType::Gauge,
            Value::Histogram(_) => MetricType::Histogram,
            Value::Info => MetricType::Info,
        }
    }
}

/// OpenMetrics 1.0 text, ending with `# EOF`.
pub fn encode_openmetrics(families: Vec<Family>) -> Result<String, std::fmt::Error> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Collected(families)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    // prometheus-client 0.22 writes the last bucket as `le="inf"`, which
    // OpenMetrics parsers refuse: the format spells it `+Inf`.
    Ok(text.replace("{le=\"inf\"", "{le=\"+Inf\""))
}

/// The Prometheus text format 0.0.4.
pub fn encode_text(families: &[Family]) -> String {
    let mut out = String::new();
    for family in families {
        let (name, kind) = match family.kind {
            Kind::Counter => (format!("{}_total", family.name), "counter"),
            Kind::Gauge => (family.name.to_owned(), "gauge"),
            Kind::Histogram => (family.name.to_owned(), "histogram"),
            Kind::Info => (format!("{}_info", family.name), "gauge"),
        };
        let help = family.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in &family.samples {
            match value {
                Value::Count(n) => sample(&mut out, &name, labels, None, &n.to_string()),
                Value::Gauge(v) => sample(&mut out, &name, labels, None, &float(*v)),
                Value::Info => sample(&mut out, &name, labels, None, "1"),
                Value::Histogram(h) => {
                    let bucket = format!("{name}_bucket");
                    for (bound, n) in cumulative(h) {
                        let le = float(bound);
                        sample(&mut out, &bucket, labels, Some(&le), &n.to_string());
                    }
                    let sum = float(seconds(h.sum_us));
                    sample(&mut out, &format!("{name}_sum"), labels, None, &sum);
                    let count = h.count().to_string();
                    sample(&mut out, &format!("{name}_count"), labels, None, &count);
                }
            }
        }
    }
    out
}

/// A float as both formats write it (`+Inf`, and no exponent for the
/// bucket bounds).
fn float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{v}")
    }
}

fn sample(out: &mut String, name: &str, labels: &Labels, le: Option<&str>, value: &str) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let le = le.map(|le| ("le", le));
        let pairs = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(le);
        for (i, (key, v)) in pairs.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// The process's own numbers, read from `/proc` (Linux): resident memory,
/// open file descriptors, CPU time and start time, under the names every
/// Prometheus client library uses.
pub fn process_families() -> Vec<Family> {
    let mut families = Vec::new();
    if let Some(kb) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
    {
        let mut f = Family::new(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes",
        );
        f.gauge(&[], (kb * 1024) as f64);
        families.push(f);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let mut f = Family::new(
            "process_open_fds",
            Kind::Gauge,
            "Number of open file descriptors",
        );
        f.gauge(&[], dir.count() as f64);
        families.push(f);
    }
    // Field 22 of /proc/self/stat (the start, in clock ticks of 1/100 s,
    // USER_HZ on Linux), after the command name in parentheses, which may
    // hold spaces.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("btime "))?;
        line[6..].trim().parse::<u64>().ok()
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        let mut f = Family::new(
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since the Unix epoch in seconds",
        );
        f.gauge(&[], boot as f64 + start as f64 / 100.0);
        families.push(f);
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram() -> HistogramReport {
        let mut h = HistogramReport::default();
        h.buckets[0] = 2;
        h.buckets[3] = 1;
        h.sum_us = 5_000;
        h
    }

    fn families() -> Vec<Family> {
        let mut requests = Family::new("limpet_requests", Kind::Counter, "Requests received");
        requests.count(&[("worker", "0")], 7);
        let mut lat = Family::new(
            "limpet_request_duration_seconds",
            Kind::Histogram,
            "Request duration",
        );
        lat.add(&[("server", "a\"b")], Value::Histogram(histogram()));
        let mut info = Family::new("limpet_build", Kind::Info, "Build");
        info.add(&[("version", "0.1.0")], Value::Info);
        vec![requests, lat, info]
    }

    #[test]
    fn text_names_counters_with_total_and_escapes_labels() {
        let text = encode_text(&families());
        assert!(text.contains("# HELP limpet_requests_total Requests received\n"));
        assert!(text.contains("# TYPE limpet_requests_total counter\n"));
        assert!(text.contains("limpet_requests_total{worker=\"0\"} 7\n"));
        assert!(text.contains(
            "limpet_request_duration_seconds_bucket{server=\"a\\\"b\",le=\"0.0005\"} 2\n"
        ));
        assert!(text.contains(
            "limpet_request_duration_seconds_bucket{server=\"a\\\"b\",le=\"0.005\"} 3\n"
        ));
        assert!(text
            .contains("limpet_request_duration_seconds_bucket{server=\"a\\\"b\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("limpet_request_duration_seconds_sum{server=\"a\\\"b\"} 0.005\n"));
        assert!(text.contains("limpet_request_duration_seconds_count{server=\"a\\\"b\"} 3\n"));
        assert!(text
            .contains("# TYPE limpet_build_info gauge\nlimpet_build_info{version=\"0.1.0\"} 1\n"));
    }

    #[test]
    fn openmetrics_has_the_same_numbers() {
        let text = encode_openmetrics(families()).unwrap();
        assert!(text.contains("# TYPE limpet_requests counter\n"), "{text}");
        assert!(
            text.contains("limpet_requests_total{worker=\"0\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("limpet_request_duration_seconds_count{server=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("limpet_build_info{version=\"0.1.0\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
