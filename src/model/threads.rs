//! The number of compute threads, made explicit. candle's CPU kernels run on rayon (GEMM) and on
//! its own spinning barrier pool (quantized matmul), each sized from `RAYON_NUM_THREADS` /
//! `CANDLE_NUM_THREADS` on first use; more compute threads than free cores collapses throughput
//! (spinning workers steal the cores the others wait on), so set both once, before any tensor work.

/// Sizes every compute pool to `n` threads (0: the available cores). Call before the first tensor
/// operation; later calls cannot resize pools already started and return the count in force.
pub fn set_compute_threads(n: usize) -> usize {
    let n = if n == 0 { available_cores() } else { n };
    // Both variables are read when candle first sizes its pools.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    rayon::current_num_threads()
}

/// Cores this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
