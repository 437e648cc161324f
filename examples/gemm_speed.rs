//! GFLOP/s of the prefill GEMM on bloom-560m's four matrix shapes (700 tokens), for kernel work:
//! `cargo run --release --example gemm_speed [threads]`. The figures users see are in `cotscope bench`.

use std::time::Instant;

fn main() {
    let threads = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    cotscope::model::threads::set_compute_threads(threads);
    let m = 700;
    for (n, k) in [(3072, 1024), (1024, 1024), (4096, 1024), (1024, 4096)] {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 10.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 16.0).collect();
        let mut y = vec![0f32; m * n];
        cotscope::model::gemm::matmul_t(&x, &w, k, None, &mut y);
        let reps = 5;
        let t = Instant::now();
        for _ in 0..reps {
            cotscope::model::gemm::matmul_t(&x, &w, k, None, &mut y);
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("{m}x{n}x{k}: {:.1} ms, {:.1} GFLOP/s", s * 1e3, 2.0 * (m * n * k) as f64 / s / 1e9);
    }
}
