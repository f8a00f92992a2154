//! Gateways: HAProxy render time for 10 / 1 000 / 10 000 gateways, and the embedded router's
//! route choice per request.
//!
//! Run with: `cargo bench -p vamp-benches --bench gateway`

use std::hint::black_box;

/// The allocator `vamp-server` renders with (its `mimalloc` feature, on by default).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vamp_core::model::lookup::{gateway_lookup_name, route_lookup_name};
use vamp_core::model::{Percentage, PortType};
use vamp_core::traits::{Balance, ResolvedCondition, ResolvedGateway, ResolvedRoute, RouteTarget};
use vamp_gateway::condition::{Condition, Headers};
use vamp_gateway::haproxy::render::{RenderOptions, render};
use vamp_gateway::select::{Route, Selector};

/// `n` gateways of two routes (90/10, the second with a cookie condition), two instances each.
fn gateways(n: usize) -> Vec<ResolvedGateway> {
    (0..n)
        .map(|i| {
            let name = format!("app{i}/web");
            let route = |v: &str, weight: u8| {
                let path = format!("app{i}/web/{v}");
                ResolvedRoute {
                    lookup_name: route_lookup_name(&name, &path),
                    path,
                    weight: Percentage::new(weight).expect("weight"),
                    condition: None,
                    condition_strength: Percentage::FULL,
                    rewrites: vec![],
                    balance: Balance::RoundRobin,
                    mirror: None,
                    targets: (0..2)
                        .map(|t| RouteTarget {
                            name: format!("app{i}_{v}_{t}"),
                            host: "10.0.0.1".into(),
                            port: 20_000 + t,
                        })
                        .collect(),
                }
            };
            let mut canary = route("v2", 10);
            canary.condition = Some(ResolvedCondition::parse(
                "has cookie beta or user-agent = Safari",
            ));
            let routes = vec![route("v1", 90), canary];
            ResolvedGateway {
                lookup_name: gateway_lookup_name(&name),
                name,
                port: 30_000 + u16::try_from(i % 30_000).expect("port"),
                protocol: PortType::Http,
                sticky: None,
                virtual_hosts: vec![],
                routes,
            }
        })
        .collect()
}

fn render_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("haproxy_render");
    group.sample_size(10);
    let opts = RenderOptions::default();
    for n in [10, 1_000, 10_000] {
        let gs = gateways(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &gs, |b, gs| {
            b.iter(|| black_box(render(gs, &opts).config.text().len()));
        });
    }
    // The same without freeing the typed config (what a caller that frees it elsewhere waits).
    let gs = gateways(10_000);
    group.bench_function("10000_freed_elsewhere", |b| {
        b.iter_with_large_drop(|| {
            let rendered = render(&gs, &opts);
            let len = rendered.config.text().len();
            (rendered, len)
        });
    });
    // The two halves of the 10 000: building the typed config, and writing its text.
    let gs = gateways(10_000);
    group.bench_function("10000_config_only", |b| {
        b.iter(|| black_box(render(&gs, &opts).config.frontends.len()));
    });
    let rendered = render(&gs, &opts);
    group.bench_function("10000_text_only", |b| {
        b.iter(|| black_box(rendered.config.text().len()));
    });
    group.finish();
}

fn select_bench(c: &mut Criterion) {
    let mut s = Selector::new(vec![
        Route::weighted("v1", 90),
        Route::weighted("v2", 10)
            .with_condition(Condition::parse("has cookie beta").expect("condition"), 100),
    ]);
    let plain = Headers::from([("user-agent", "curl/8"), ("cookie", "session=abc")]);
    c.bench_function("select_route_90_10_with_condition", |b| {
        b.iter(|| black_box(s.pick(&plain)))
    });
}

criterion_group!(benches, render_bench, select_bench);
criterion_main!(benches);
