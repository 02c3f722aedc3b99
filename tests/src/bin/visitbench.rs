//! The volunteers' side under load, for BENCHMARKS.md: many volunteers (demo phones
//! 139xxxxxxxx, logged in through the development login) open their feed, then claim the
//! first visit it offers; `/healthz` of the same server is measured in the same run as the
//! ceiling. Prints Markdown rows.
//!
//! visitbench --base http://127.0.0.1:18080 [--volunteers 5000] [--concurrency 32] [--seconds 10]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A tiny deterministic generator: which volunteer a request is made as.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    claimed: u64,
    full: u64,
}

fn row(label: &str, concurrency: usize, seconds: u64, mut t: Tally) -> String {
    t.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let l = &t.latencies_us;
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    format!(
        "| {label} | {concurrency} | {:.0} | {:.2} | {:.2} | {} |",
        t.latencies_us.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99),
        t.errors
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let base = arg(&args, "--base").ok_or_else(|| anyhow::anyhow!("--base is required"))?;
    let volunteers: usize = arg(&args, "--volunteers").map_or(Ok(5000), |s| s.parse())?;
    let concurrency: usize = arg(&args, "--concurrency").map_or(Ok(32), |s| s.parse())?;
    let seconds: u64 = arg(&args, "--seconds").map_or(Ok(10), |s| s.parse())?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    // Log everyone in (approved volunteers only: the feed refuses the others).
    let mut tokens = Vec::new();
    for i in 0..volunteers {
        let body: Value = client
            .post(format!("{base}/api/auth/dev"))
            .json(&json!({"phone": format!("139{i:08}")}))
            .send()
            .await?
            .json()
            .await?;
        let Some(token) = body["access_token"].as_str() else {
            continue;
        };
        let probe = client
            .get(format!("{base}/api/visits/feed?limit=1"))
            .bearer_auth(token)
            .send()
            .await?;
        if probe.status().is_success() {
            tokens.push(token.to_string());
        }
    }
    anyhow::ensure!(!tokens.is_empty(), "no approved volunteer could log in");
    eprintln!("{} volunteers logged in", tokens.len());
    let tokens = Arc::new(tokens);

    println!("| request | clients | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    let healthz = run(
        &client,
        &base,
        &tokens,
        concurrency,
        seconds,
        Phase::Healthz,
    )
    .await?;
    println!(
        "{}",
        row("GET /healthz (ceiling)", concurrency, seconds, healthz)
    );
    let feed = run(&client, &base, &tokens, concurrency, seconds, Phase::Feed).await?;
    println!(
        "{}",
        row(
            "GET /api/visits/feed (20 a page, a random volunteer each time)",
            concurrency,
            seconds,
            feed
        )
    );
    let claims = run(&client, &base, &tokens, concurrency, seconds, Phase::Claim).await?;
    let (claimed, full) = (claims.claimed, claims.full);
    println!(
        "{}",
        row(
            "POST /api/visits/{id}/claims (the feed's first visit)",
            concurrency,
            seconds,
            claims
        )
    );
    println!();
    println!(
        "Claims: {claimed} taken ({:.0}/s), {full} refused as full or no longer open.",
        claimed as f64 / seconds as f64
    );
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Healthz,
    Feed,
    Claim,
}

async fn run(
    client: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    concurrency: usize,
    seconds: u64,
    phase: Phase,
) -> anyhow::Result<Tally> {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let until = warm_until + Duration::from_secs(seconds);
    let seed = Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, base, tokens, seed) = (
            client.clone(),
            base.to_string(),
            Arc::clone(tokens),
            Arc::clone(&seed),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = seed.fetch_add(w as u64 * 7919 + 1, Ordering::Relaxed) | 1;
            let mut t = Tally::default();
            loop {
                let started = Instant::now();
                if started >= until {
                    break;
                }
                let token = &tokens[(next(&mut rng) as usize) % tokens.len()];
                if phase == Phase::Claim {
                    let measured = started >= warm_until;
                    match claim_first(&client, &base, token, &mut t, measured).await {
                        Ok(Some(took)) if measured => t.latencies_us.push(took.as_micros() as u64),
                        Ok(_) => {}
                        Err(_) if measured => t.errors += 1,
                        Err(_) => {}
                    }
                    continue;
                }
                let outcome = match phase {
                    Phase::Healthz => client
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .map(|r| r.status().is_success()),
                    Phase::Feed => client
                        .get(format!("{base}/api/visits/feed?limit=20"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .map(|r| r.status().is_success()),
                    Phase::Claim => unreachable!("handled above"),
                };
                if started < warm_until {
                    continue;
                }
                match outcome {
                    Ok(true) => t.latencies_us.push(started.elapsed().as_micros() as u64),
                    _ => t.errors += 1,
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for w in workers {
        let t = w.await?;
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        all.claimed += t.claimed;
        all.full += t.full;
    }
    Ok(all)
}

/// The feed's first visit, claimed. Returns how long the claim alone took when it got a
/// clean answer: 2xx, or 409/422 (someone else was quicker, or the volunteer's week is
/// full); None when the feed offered nothing; an error for anything else.
async fn claim_first(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    t: &mut Tally,
    counted: bool,
) -> Result<Option<Duration>, String> {
    let page: Value = client
        .get(format!("{base}/api/visits/feed?limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let Some(id) = page["items"][0]["id"].as_str() else {
        return Ok(None);
    };
    let started = Instant::now();
    let res = client
        .post(format!("{base}/api/visits/{id}/claims"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    match res.status().as_u16() {
        200..=299 => {
            if counted {
                t.claimed += 1;
            }
            Ok(Some(took))
        }
        409 | 422 => {
            if counted {
                t.full += 1;
            }
            Ok(Some(took))
        }
        s => Err(format!("claim answered {s}")),
    }
}
