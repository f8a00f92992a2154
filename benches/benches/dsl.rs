//! DSL throughput: parse + validate, and write, a 100-service blueprint.
//!
//! Run with: `cargo bench -p vamp-benches --bench dsl`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vamp_core::dsl;

fn dsl(c: &mut Criterion) {
    let text = vamp_benches::blueprint(100);
    let artifacts = dsl::load(&text, None, None).expect("bench input is valid");
    let mut group = c.benchmark_group("blueprint-100-services");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse+validate", |b| {
        b.iter(|| dsl::load(black_box(&text), None, None).expect("valid"));
    });
    group.bench_function("parse", |b| {
        b.iter(|| dsl::read(black_box(&text), None).expect("valid"));
    });
    group.bench_function("write-yaml", |b| {
        b.iter(|| dsl::to_yaml(black_box(&artifacts)).expect("writes"));
    });
    group.finish();
}

criterion_group!(benches, dsl);
criterion_main!(benches);
