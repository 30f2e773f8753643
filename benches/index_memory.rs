//! Index memory and lookup tail latency: for 1k, 10k and 100k ExternalSecrets, each size in a fresh
//! child process (so RSS is that size's alone), builds the index as the watches do (pages of 500
//! objects decoded from JSON, converted, applied), then reports:
//! - build time (decode + convert + apply, generation of the JSON excluded);
//! - net heap retained by the index, exact, from a counting allocator (`stats_alloc`), per ES;
//! - process RSS and peak RSS (`/proc/self/status`);
//! - `plan` latency for one event, each call timed: p50 / p99 / p99.9 / max.
//!
//! `cargo bench --bench index_memory [-- SIZES...]`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::alloc::System;
use std::time::{Duration, Instant};

use kvsync::core::decide::{NoNamespaceLabels, plan};
use kvsync::core::index::Index;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PAGE: usize = 500;
const LOOKUPS: usize = 50_000;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--one") {
        one(args[1].parse().expect("size"));
        return;
    }
    let sizes: Vec<usize> = if args.is_empty() && !bench {
        // `cargo test --all-targets` runs this without `--bench`: one small size, as a smoke test.
        vec![1_000]
    } else if args.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        args.iter()
            .map(|a| a.parse().expect("sizes are numbers"))
            .collect()
    };
    println!(
        "{:>8} {:>9} {:>12} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "ESs",
        "build_s",
        "heap_MB",
        "blocks",
        "B_per_ES",
        "RSS_MB",
        "peak_MB",
        "plan_p50",
        "plan_p99",
        "p99.9",
        "max_us"
    );
    for n in sizes {
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--one", &n.to_string()])
            .output()
            .expect("child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    println!("(plan_* in µs; heap = bytes allocated and not freed by building the index)");
}

fn one(n: usize) {
    let total = common::population_len(n);
    let mut index = Index::new();
    let mut build = Duration::ZERO;
    let region = Region::new(GLOBAL);
    for start in (0..total).step_by(PAGE) {
        // The page's JSON is generated outside the timed part (as if read from the socket).
        let page: Vec<serde_json::Value> = (start..(start + PAGE).min(total))
            .map(|k| common::population_item(n, k))
            .collect();
        let bytes = serde_json::to_vec(&page).unwrap();
        drop(page);
        let t = Instant::now();
        let objects: Vec<kube::core::DynamicObject> = serde_json::from_slice(&bytes).unwrap();
        common::apply_all(&mut index, &objects);
        drop(objects);
        build += t.elapsed();
    }
    // Everything allocated in the loop except the index was freed.
    let stats = region.change();
    let heap = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64 + stats.bytes_reallocated as i64;
    let blocks = stats.allocations as i64 - stats.deallocations as i64;
    let (rss, hwm) = common::rss_kib("self");

    let changes = common::changes(1024, n);
    let lookups = std::env::var("KVSYNC_BENCH_LOOKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LOOKUPS);
    let mut samples = Vec::with_capacity(lookups);
    let mut triggered = 0usize;
    for k in 0..lookups {
        let c = std::slice::from_ref(&changes[k % changes.len()]);
        let t = Instant::now();
        let p = plan(&index, c, &NoNamespaceLabels);
        samples.push(t.elapsed());
        triggered += p.triggers.len();
    }
    assert!(triggered > 0);
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{:>8} {:>9.3} {:>12.1} {:>10} {:>10} {:>9.1} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
        n,
        build.as_secs_f64(),
        heap as f64 / 1e6,
        blocks,
        heap / n as i64,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        us(common::pct(&samples, 50.0)),
        us(common::pct(&samples, 99.0)),
        us(common::pct(&samples, 99.9)),
        us(*samples.last().unwrap()),
    );
    std::hint::black_box(index);
}
