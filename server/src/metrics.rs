//! Prometheus text metrics for requests: counts by method and status class, and a latency
//! histogram. Kept in atomics: no locks on the request path.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use poem::{Endpoint, IntoResponse, Request, Response, Result};

const BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

#[derive(Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS_MS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Metrics {
    fn observe(&self, status: u16, started: Instant) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let us = started.elapsed().as_micros() as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        for (i, limit) in BUCKETS_MS.iter().enumerate() {
            if us <= limit * 1000 {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP nuanxin_http_requests_total HTTP requests answered, by status class.\n",
        );
        out.push_str("# TYPE nuanxin_http_requests_total counter\n");
        for (i, n) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "nuanxin_http_requests_total{{status=\"{}xx\"}} {}",
                i + 1,
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP nuanxin_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE nuanxin_http_request_duration_seconds histogram\n");
        for (i, limit) in BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "nuanxin_http_request_duration_seconds_bucket{{le=\"{}\"}} {}",
                *limit as f64 / 1000.0,
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "nuanxin_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "nuanxin_http_request_duration_seconds_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "nuanxin_http_request_duration_seconds_count {count}");
        for (name, help, value) in extra {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// Wraps a request to record its status and duration (see `app::routes`).
pub async fn track<E: Endpoint>(metrics: &Metrics, ep: &E, req: Request) -> Result<Response> {
    let started = Instant::now();
    let result = ep.call(req).await.map(IntoResponse::into_response);
    let status = match &result {
        Ok(r) => r.status(),
        Err(e) => e.status(),
    };
    metrics.observe(status.as_u16(), started);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.observe(200, Instant::now());
        m.observe(404, Instant::now());
        let text = m.render(&[("nuanxin_families", "Families in the register.", 3.0)]);
        assert!(text.contains("nuanxin_http_requests_total{status=\"2xx\"} 1"));
        assert!(text.contains("nuanxin_http_requests_total{status=\"4xx\"} 1"));
        assert!(text.contains("nuanxin_http_request_duration_seconds_count 2"));
        assert!(text.contains("nuanxin_families 3"));
    }
}
