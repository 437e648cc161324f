//! GFLOP/s of the prefill GEMM on bloom-560m's four matrix shapes, for kernel work:
//! `cargo run --release --example gemm_speed [threads] [tokens] [layers]`. With `layers` > 1 each
//! shape has that many distinct weights, run in turn, so they stream from memory as in a prefill of
//! a few tokens (a question after a cached template) rather than sitting in cache. The figures
//! users see are in `cotscope bench`.

use std::time::Instant;

fn main() {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (threads, m, layers) = (arg(1, 0), arg(2, 700), arg(3, 1).max(1));
    cotscope::model::threads::set_compute_threads(threads);
    let mut total = (0.0, 0.0);
    for (n, k) in [(3072, 1024), (1024, 1024), (4096, 1024), (1024, 4096)] {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 10.0).collect();
        let ws: Vec<Vec<f32>> =
            (0..layers).map(|l| (0..n * k).map(|i| (((i + l) * 5 % 17) as f32 - 8.0) / 16.0).collect()).collect();
        let mut y = vec![0f32; m * n];
        cotscope::model::gemm::matmul_t(&x, &ws[0], k, None, &mut y);
        let reps = 5;
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            for w in &ws {
                cotscope::model::gemm::matmul_t(&x, w, k, None, &mut y);
            }
            best = best.min(t.elapsed().as_secs_f64() / layers as f64);
        }
        let flop = 2.0 * (m * n * k) as f64;
        total = (total.0 + best, total.1 + flop);
        println!("{m}x{n}x{k}: {:.3} ms, {:.1} GFLOP/s", best * 1e3, flop / best / 1e9);
    }
    println!("all four: {:.3} ms, {:.1} GFLOP/s", total.0 * 1e3, total.1 / total.0 / 1e9);
}
