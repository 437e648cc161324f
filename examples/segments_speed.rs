//! A wave of eval questions prefilled together (`add_rows_many`: 8 prompts' own 67 tokens after a
//! shared 584-token template, bloom-560m shape, random weights) against the same tokens as one
//! prompt, then the wave's decode steps (the median of 64), for kernel work:
//! `cargo run --release --example segments_speed [threads]`. The figures users see are in
//! `cotscope bench --scenario eval`.

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let threads = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    // As `main` does: activation buffers reused, not faulted in afresh each layer.
    cotscope::model::alloc::keep_freed_buffers();
    cotscope::model::threads::set_compute_threads(threads);
    let cfg = cotscope::model::Config::published("bloom-560m").ok_or_else(|| anyhow::anyhow!("no bloom-560m shape"))?;
    let mut m = cotscope::bench::random_model(&cfg, &cotscope::model::LoadOptions::default())?.model;
    let shared: Vec<u32> = (0..584u32).map(|i| 1000 + i * 7 % 5000).collect();
    let prompts: Vec<Vec<u32>> =
        (0..8u32).map(|q| shared.iter().copied().chain((0..67u32).map(|i| 2000 + q * 97 + i)).collect()).collect();
    let asks: Vec<(&[u32], usize)> = prompts.iter().map(|p| (p.as_slice(), 1)).collect();
    // The same own tokens as one prompt after the template (prefilled once: the prefix cache would
    // answer a repeat).
    let one: Vec<u32> = shared.iter().chain(prompts.iter().flat_map(|p| &p[shared.len()..])).copied().collect();
    m.start_batch(&shared)?;
    let t = Instant::now();
    m.prefill(&one)?;
    println!("one prompt: {:.3} s", t.elapsed().as_secs_f64());
    for rep in 0..3 {
        m.start_batch(&shared)?;
        m.reserve_positions(64);
        let t = Instant::now();
        m.add_rows_many(&asks)?;
        println!("wave {rep}: {:.3} s", t.elapsed().as_secs_f64());
    }
    // The last wave's rows decoded together, as eval steps them.
    let rows = asks.len() as u32;
    let mut next: Vec<u32> = (0..rows).map(|r| 3000 + r).collect();
    let mut ms = Vec::new();
    for s in 0..64u32 {
        let t = Instant::now();
        m.step(&next)?;
        ms.push(1e3 * t.elapsed().as_secs_f64());
        next = (0..rows).map(|r| 3000 + (r * 31 + s * 17) % 4000).collect();
    }
    ms.sort_by(f64::total_cmp);
    println!("{rows}-row steps: median {:.1} ms, fastest {:.1} ms", ms[ms.len() / 2], ms[0]);
    Ok(())
}
