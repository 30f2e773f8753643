//! Micro-benchmarks (divan): parsing deliveries, building the index, planning one event.
//!
//! `cargo bench --bench micro`. One thread; allocation counts from divan's `AllocProfiler`.
//! Fixtures: `benches/common/mod.rs`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use divan::counter::{BytesCount, ItemsCount};
use divan::{AllocProfiler, Bencher, black_box};
use kvsync::core::decide::{NoNamespaceLabels, plan};
use kvsync::core::index::Index;
use kvsync::core::model::Cloud;
use kvsync::eventgrid::{Delivery, parse_delivery};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// Event Grid schema deliveries of 1, 100 and 5,000 events.
#[divan::bench(args = [1, 100, 5000])]
fn parse_eventgrid(bencher: Bencher<'_, '_>, events: usize) {
    let body = common::batch(events, 100_000, false);
    let headers = common::headers(false);
    bencher
        .counter(ItemsCount::new(events))
        .counter(BytesCount::of_slice(&body))
        .bench_local(|| parse_delivery(black_box(&body), &headers, Cloud::Public).unwrap());
}

/// CloudEvents 1.0 batch deliveries (`application/cloudevents-batch+json`).
#[divan::bench(args = [1, 100, 5000])]
fn parse_cloudevents_batch(bencher: Bencher<'_, '_>, events: usize) {
    let body = common::batch(events, 100_000, true);
    let headers = common::headers(true);
    bencher
        .counter(ItemsCount::new(events))
        .counter(BytesCount::of_slice(&body))
        .bench_local(|| parse_delivery(black_box(&body), &headers, Cloud::Public).unwrap());
}

fn parse_and_plan(index: &Index, body: &[u8], headers: &http::HeaderMap) -> usize {
    let Delivery::Events(events) = parse_delivery(body, headers, Cloud::Public).unwrap() else {
        unreachable!("fixtures are events")
    };
    let p = plan(index, &events.changes(), &NoNamespaceLabels);
    p.triggers.len()
}

/// Parse + match: an Event Grid delivery of 1, 100 or 5,000 events, parsed and planned against an
/// index of 10k ExternalSecrets (what the webhook does before patching).
#[divan::bench(args = [1, 100, 5000])]
fn parse_and_plan_10k(bencher: Bencher<'_, '_>, events: usize) {
    let index = common::index(10_000);
    let body = common::batch(events, 10_000, false);
    let headers = common::headers(false);
    bencher
        .counter(ItemsCount::new(events))
        .bench_local(|| parse_and_plan(&index, black_box(&body), &headers));
}

/// Building the index from `DynamicObject`s as the watches do (convert + apply), stores first.
#[divan::bench(args = [1000, 10_000, 100_000], sample_count = 5, sample_size = 1)]
fn build_index(bencher: Bencher<'_, '_>, n: usize) {
    bencher
        .counter(ItemsCount::new(n))
        .with_inputs(|| common::dynamic_objects(n))
        .bench_local_values(|objects| {
            let mut index = Index::new();
            common::apply_all(&mut index, &objects);
            index
        });
}

/// Planning one new-version event (lookup + evaluate + trigger value) at each index size.
#[divan::bench(args = [1000, 10_000, 100_000])]
fn plan_one_event(bencher: Bencher<'_, '_>, n: usize) {
    let index = common::index(n);
    let changes = common::changes(1024, n);
    let mut k = 0usize;
    bencher.bench_local(|| {
        k = (k + 1) % changes.len();
        plan(&index, std::slice::from_ref(&changes[k]), &NoNamespaceLabels)
    });
}
