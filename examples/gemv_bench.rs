//! The decode kernels alone: one step's matrices of bloom-560m (24 layers of qkv, dense, h→4h and
//! 4h→h, and the 250880 × 1024 LM head) through `gemv`, as GB/s of weights against the read
//! bandwidth probe of `cotscope bench`. Attention, norms and the rest of a step are left out, so a
//! shortfall here is the kernels' own.
//!
//! `cargo run --release --example gemv_bench -- [f32|f16|f16p|q8] [rows] [threads] [reps] [all|layers|head]`
//!
//! `f16p` is f16 in the panels a model's f16 matrices are kept in where the CPU has AVX-512
//! (`gemv::F16Panels`); `f16` keeps the rows, both on huge pages as a model's are.
//!
//! `layers` (the 96 layer matrices, 1–4 MB each in q8_0) against `head` (one 257 MB matrix) tells
//! what starting and ending a matrix costs apart from streaming it. Each shape's own rate (its
//! products' time over all passes) is printed too: on a Sapphire Rapids guest the q8_0 layer
//! matrices read at 20–21 GB/s against the LM head's 26 (BENCHMARKS.md, Round 20).
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use cotscope::model::alloc::weight_copy;
use cotscope::model::gemv::{self, F16Panels, Q8Weights};
use half::f16;

/// One matrix product: the matrix's index, `x`, `y`.
type Product<'a> = dyn Fn(usize, &[f32], &mut [f32]) + 'a;

/// The best and the median of `reps` timings of `step`, in seconds: the host's bandwidth moves
/// between passes, and the best alone hides how far.
fn timings(reps: usize, mut step: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

#[global_allocator]
static A: cotscope::model::alloc::HugePageAlloc = cotscope::model::alloc::HugePageAlloc;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dt = a.get(1).map(String::as_str).unwrap_or("f16").to_string();
    let m: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let threads: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let reps: usize = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(10);
    let part = a.get(5).map(String::as_str).unwrap_or("all").to_string();
    cotscope::model::threads::set_compute_threads(threads);
    let h = 1024;
    let mut shapes: Vec<(usize, usize)> = (0..24).flat_map(|_| [(3 * h, h), (h, h), (4 * h, h), (h, 4 * h)]).collect();
    shapes.push((250880, h));
    match part.as_str() {
        "layers" => {
            shapes.pop();
        }
        "head" => shapes.drain(..shapes.len() - 1).for_each(drop),
        _ => {}
    }
    let value = |i: usize| ((i * 7 % 31) as f32 - 15.0) / 64.0;
    // Seconds in each matrix's products, over every pass.
    let secs = RefCell::new(vec![0f64; shapes.len()]);
    let run = |w_k: &Product| {
        for (i, &(n, k)) in shapes.iter().enumerate() {
            let x = vec![0.5f32; m * k];
            let mut y = vec![0f32; m * n];
            let t = Instant::now();
            w_k(i, &x, &mut y);
            secs.borrow_mut()[i] += t.elapsed().as_secs_f64();
            std::hint::black_box(&y);
        }
    };
    // Each matrix's bytes, and the passes' best and median.
    let (sizes, (best, median)): (Vec<usize>, _) = match dt.as_str() {
        "f32" => {
            let ws: Vec<Vec<f32>> = shapes.iter().map(|&(n, k)| (0..n * k).map(value).collect()).collect();
            let f = |i: usize, x: &[f32], y: &mut [f32]| gemv::matmul_t(x, &ws[i], shapes[i].1, y);
            (ws.iter().map(|w| w.len() * 4).collect(), timings(reps, || run(&f)))
        }
        "f16" => {
            // Where a model's f16 matrices lie (huge pages), as `f16p`'s panels.
            let ws: Vec<Vec<f16>> = shapes
                .iter()
                .map(|&(n, k)| weight_copy(&(0..n * k).map(|i| f16::from_f32(value(i))).collect::<Vec<_>>()))
                .collect();
            let f = |i: usize, x: &[f32], y: &mut [f32]| gemv::matmul_t(x, &ws[i], shapes[i].1, y);
            (ws.iter().map(|w| w.len() * 2).collect(), timings(reps, || run(&f)))
        }
        "f16p" => {
            let ws: Vec<F16Panels> = shapes
                .iter()
                .map(|&(n, k)| {
                    F16Panels::from_rows(&(0..n * k).map(|i| f16::from_f32(value(i))).collect::<Vec<_>>(), k)
                        .into_arena()
                })
                .collect();
            let epi = gemv::Epilogue::default();
            let f = |i: usize, x: &[f32], y: &mut [f32]| gemv::matmul_t_panels_then(x, &ws[i], y, &epi);
            (ws.iter().map(F16Panels::size_in_bytes).collect(), timings(reps, || run(&f)))
        }
        _ => {
            let ws: Vec<Q8Weights> = shapes
                .iter()
                .map(|&(n, k)| Q8Weights::quantize(&(0..n * k).map(value).collect::<Vec<_>>(), k))
                .collect();
            let f = |i: usize, x: &[f32], y: &mut [f32]| gemv::matmul_t_q8(x, &ws[i], y);
            (ws.iter().map(Q8Weights::size_in_bytes).collect(), timings(reps, || run(&f)))
        }
    };
    let bytes: usize = sizes.iter().sum();
    // Seconds, bytes and products per shape.
    let mut per_shape = BTreeMap::<(usize, usize), (f64, usize, usize)>::new();
    for ((shape, &s), &b) in shapes.iter().zip(secs.borrow().iter()).zip(&sizes) {
        let e = per_shape.entry(*shape).or_default();
        *e = (e.0 + s, e.1 + b * reps.max(1), e.2 + reps.max(1));
    }
    for ((n, k), (s, b, count)) in per_shape {
        println!(
            "{n} x {k}: {:.1} µs a product (mean of {count}), {:.2} GB/s",
            s / count as f64 * 1e6,
            b as f64 / s / 1e9
        );
    }
    let bw = cotscope::bench::read_bandwidth_gb_s(256, threads);
    let gbs = bytes as f64 / best / 1e9;
    println!(
        "{dt} {part} rows {m} threads {threads}: {:.1} ms/step (median {:.1}), {gbs:.2} GB/s of weights, probe {bw:.2} GB/s: {:.0}% of the bound",
        best * 1e3,
        median * 1e3,
        100.0 * gbs / bw
    );
}
