//! Money parsing and formatting, side by side with the float path it replaces.
//!
//! Read the numbers as ratios within one run (exact decimal parse vs `f64` parse), never as
//! absolute times: the machine is shared and small.

use contract::Money;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const INPUTS: [&str; 6] = ["500", "199.99", "0.01", "1000000000000", "1.5E+1", "42.10"];

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.bench_function("money_exact", |b| {
        b.iter(|| {
            for s in INPUTS {
                black_box(Money::parse_decimal(black_box(s)).ok());
            }
        })
    });
    g.bench_function("f64_baseline", |b| {
        b.iter(|| {
            for s in INPUTS {
                black_box(black_box(s).parse::<f64>().ok());
            }
        })
    });
    g.finish();
}

fn json_roundtrip(c: &mut Criterion) {
    let body = r#"{"user_id":"6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38","amount":199.99}"#;
    let mut g = c.benchmark_group("json_amount");
    g.bench_function("money_exact", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(body)).unwrap_or_default();
            let m = v["amount"]
                .as_number()
                .and_then(|n| Money::try_from(n).ok());
            black_box(m.map(|m| m.to_string()))
        })
    });
    g.bench_function("f64_baseline", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(body)).unwrap_or_default();
            black_box(v["amount"].as_f64().map(|f| f.to_string()))
        })
    });
    g.finish();
}

criterion_group!(benches, parse, json_roundtrip);
criterion_main!(benches);
