//! A small HTTP load generator for the benchmarks: N concurrent clients request one URL
//! for a while; prints requests per second and latency percentiles as a Markdown row.
//!
//! loadgen --url http://127.0.0.1:8080/healthz [--token T] [--concurrency 16] [--seconds 10] [--label healthz]

use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").ok_or_else(|| anyhow::anyhow!("--url is required"))?;
    let token = arg(&args, "--token");
    let concurrency: usize = arg(&args, "--concurrency").map_or(Ok(16), |s| s.parse())?;
    let seconds: u64 = arg(&args, "--seconds").map_or(Ok(10), |s| s.parse())?;
    let label = arg(&args, "--label").unwrap_or_else(|| url.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    // Warm up connections and caches for a second, then measure.
    let warm_until = Instant::now() + Duration::from_secs(1);
    let until = warm_until + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let started = Instant::now();
                if started >= until {
                    break;
                }
                let mut req = client.get(&url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let ok = match req.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if started < warm_until {
                    continue;
                }
                if ok {
                    latencies.push(started.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "| {label} | {concurrency} | {:.0} | {:.2} | {:.2} | {errors} |",
        all.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
