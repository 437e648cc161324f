//! Decode steps of an eval batch (8 rows, each a question's own 67 tokens after a shared 584-token
//! template, bloom-560m shape, random weights): the median step over 64, for kernel work on the
//! batched step (`cargo run --release --example eval_step_speed [threads] [rows]`). The figures
//! users see are in `cotscope bench --scenario eval`.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let threads = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let rows: u32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    // As `main` does: activation buffers reused, not faulted in afresh each layer.
    cotscope::model::alloc::keep_freed_buffers();
    cotscope::model::threads::set_compute_threads(threads);
    let cfg = cotscope::model::Config::published("bloom-560m").ok_or_else(|| anyhow::anyhow!("no bloom-560m shape"))?;
    let mut m = cotscope::bench::random_model(&cfg, &cotscope::model::LoadOptions::default())?.model;
    let shared: Vec<u32> = (0..584u32).map(|i| 1000 + i * 7 % 5000).collect();
    let prompts: Vec<Vec<u32>> =
        (0..rows).map(|q| shared.iter().copied().chain((0..67u32).map(|i| 2000 + q * 97 + i)).collect()).collect();
    let asks: Vec<(&[u32], usize)> = prompts.iter().map(|p| (p.as_slice(), 1)).collect();
    m.start_batch(&shared)?;
    m.reserve_positions(64);
    m.add_rows_many(&asks)?;
    let mut next: Vec<u32> = (0..rows).map(|r| 3000 + r).collect();
    let mut ms = Vec::new();
    for s in 0..64u32 {
        let t = Instant::now();
        m.step(&next)?;
        ms.push(1e3 * t.elapsed().as_secs_f64());
        next = (0..rows).map(|r| 3000 + (r * 31 + s * 17) % 4000).collect();
    }
    let total: f64 = ms.iter().sum();
    ms.sort_by(f64::total_cmp);
    println!("{rows} rows: median step {:.1} ms, min {:.1}, total {:.2} s", ms[ms.len() / 2], ms[0], total / 1e3);
    Ok(())
}
