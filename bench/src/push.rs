//! `push`: event → first delivery attempt latency of the push dispatcher at a
//! steady event rate, beside a baseline measured in the same run: the same HTTP request sent
//! directly by the same process (no outbox, no dispatcher).
//!
//! An "event" is a hang-up push written to the outbox in its own committed transaction (as the
//! call service does when a call ends); its latency runs from the commit to the moment the
//! receiver (a minimal HTTP server in this process, on loopback) has read the request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use dialbridge_core::{EnterpriseId, EnterpriseSettings, PushCharset, PushFormat, PushMethod, PushTarget, PushType};
use dialbridge_push::{Dispatcher, DispatcherSettings};
use dialbridge_store::{PasswordHashCost, SecretKey, Store, StoreOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stats::ms;

#[derive(Args, Clone)]
pub struct PushArgs {
    /// Events per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Seconds of events.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
}

impl PushArgs {
    pub fn smoke() -> Self {
        PushArgs { rate: 20, seconds: 1 }
    }
}

#[derive(serde::Serialize)]
pub struct Report {
    pub rate: u32,
    pub events: u32,
    pub lost: usize,
    pub outbox_p50_ms: f64,
    pub outbox_p99_ms: f64,
    pub direct_p50_ms: f64,
    pub direct_p99_ms: f64,
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A minimal HTTP/1.1 receiver: records when each request (by its `webhook-id`, or its path)
/// was read, answers 200.
async fn receiver(arrivals: Arrivals) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0usize);
                    if body.len() < length {
                        continue;
                    }
                    let now = Instant::now();
                    let key = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("webhook-id:")
                                .map(|v| v.trim().to_owned())
                        })
                        .or_else(|| head.split_whitespace().nth(1).map(str::to_owned))
                        .unwrap_or_default();
                    arrivals
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(key)
                        .or_insert(now);
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
                    data.clear();
                }
            });
        }
    });
    Ok(address)
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    crate::stats::percentile(&v, p)
}

pub async fn run(args: PushArgs, out: &std::path::Path) -> anyhow::Result<Report> {
    let total = args.rate * args.seconds;
    let arrivals: Arrivals = Arc::default();
    let address = receiver(arrivals.clone()).await?;

    let dir = tempfile::tempdir()?;
    let options = StoreOptions {
        database_url: StoreOptions::sqlite_in(dir.path()),
        password_hash_cost: PasswordHashCost {
            memory_kib: 64,
            iterations: 1,
        },
    };
    let store = Store::open(&options, &SecretKey::from_hex(&"42".repeat(32))?).await?;
    let enterprise = EnterpriseId::new(3000001)?;
    let mut tx = store.begin().await?;
    tx.insert_enterprise(enterprise, &EnterpriseSettings::new("Bench"))
        .await?;
    tx.upsert_push_target(
        enterprise,
        &PushTarget {
            name: "hangup".into(),
            push_type: PushType::Hangup,
            url: format!("http://{address}/push?model=onhookpush"),
            method: PushMethod::Post,
            timeout_ms: 3000,
            retries: 1,
            format: PushFormat::Legacy,
            charset: PushCharset::Utf8,
            name_mapping: Vec::new(),
        },
    )
    .await?;
    tx.commit().await?;
    let dispatcher = Dispatcher::start(store.clone(), DispatcherSettings::default());
    let payload =
        r#"{"cdr_main_unique_id":"bench","cdr_status":"28","cdr_customer_number":"13800138000","userField":"x"}"#;

    println!(
        "push latency benchmark: {} events/s for {} s, loopback receiver",
        args.rate, args.seconds
    );
    // The outbox path.
    let mut committed: HashMap<String, Instant> = HashMap::new();
    let start = Instant::now();
    for i in 0..total {
        tokio::time::sleep_until((start + Duration::from_secs_f64(f64::from(i) / f64::from(args.rate))).into()).await;
        let mut tx = store.begin().await?;
        let id = tx
            .enqueue_push(enterprise, "hangup", &format!("bench-{i}"), payload)
            .await?;
        tx.commit().await?;
        committed.insert(format!("evt_{id}"), Instant::now());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap_or_else(|p| p.into_inner()).len() < committed.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let outbox: Vec<Duration> = committed
        .iter()
        .filter_map(|(id, at)| got.get(id).map(|r| r.duration_since(*at)))
        .collect();
    let lost = committed.len() - outbox.len();

    // The baseline: the same request sent directly, at the same rate.
    let client = reqwest::Client::new();
    let body = serde_form(payload);
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let start = Instant::now();
    let mut requests = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until((start + Duration::from_secs_f64(f64::from(i) / f64::from(args.rate))).into()).await;
        let path = format!("/direct/{i}");
        sent.insert(path.clone(), Instant::now());
        let request = client
            .post(format!("http://{address}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send();
        requests.push(tokio::spawn(request));
    }
    for r in requests {
        let _ = r.await;
    }
    let got = arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let direct: Vec<Duration> = sent
        .iter()
        .filter_map(|(p, at)| got.get(p).map(|r| r.duration_since(*at)))
        .collect();

    let (o50, o99) = (percentile(outbox.clone(), 0.5), percentile(outbox, 0.99));
    let (d50, d99) = (percentile(direct.clone(), 0.5), percentile(direct, 0.99));
    println!();
    println!("| path | events | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    println!(
        "| outbox → dispatcher → receiver | {total} ({lost} not delivered) | {:.2} ms | {:.2} ms |",
        ms(o50),
        ms(o99)
    );
    println!(
        "| direct HTTP request (baseline) | {total} | {:.2} ms | {:.2} ms |",
        ms(d50),
        ms(d99)
    );
    println!();
    println!(
        "p99 event → first delivery attempt: {:.2} ms (target ≤ 50 ms); {:.1}× the direct request's p99",
        ms(o99),
        ms(o99) / ms(d99).max(0.001)
    );
    dispatcher.stop().await;
    store.close().await;
    anyhow::ensure!(lost == 0, "{lost} events were not delivered");
    let report = Report {
        rate: args.rate,
        events: total,
        lost,
        outbox_p50_ms: ms(o50),
        outbox_p99_ms: ms(o99),
        direct_p50_ms: ms(d50),
        direct_p99_ms: ms(d99),
    };
    crate::write_json(out, "push", &report)?;
    Ok(report)
}

/// The form body of a payload object (what a legacy POST carries).
fn serde_form(payload: &str) -> String {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(payload).unwrap_or_default();
    map.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("&")
}
