//! The number of compute threads, made explicit. candle's CPU kernels run on rayon (GEMM) and on
//! its own spinning barrier pool (quantized matmul), each sized from `RAYON_NUM_THREADS` /
//! `CANDLE_NUM_THREADS` on first use; more compute threads than free cores collapses throughput
//! (spinning workers steal the cores the others wait on), so set both once, before any tensor work.

/// Spins of an idle candle pool worker before it parks (candle's default: 25000).
const SPIN_LIMIT: u32 = 2000;

/// Sizes every compute pool to `n` threads (0: the available cores). Call once, from `main` before
/// any other thread is started (it sets environment variables, which is only sound while no other
/// thread reads the environment) and before the first tensor operation.
pub fn set_compute_threads(n: usize) -> usize {
    let n = if n == 0 { available_cores() } else { n };
    // Both variables are read when candle first sizes its pools.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    // candle's pool workers spin 25000 times before parking after each job; while rayon's threads run
    // the next GEMM that makes more busy threads than cores. A shorter spin still catches the
    // back-to-back jobs of a decode step. The user's own setting wins.
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT.to_string());
    }
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    rayon::current_num_threads()
}

/// Cores this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The compute threads in force (rayon's global pool, sized by [`set_compute_threads`]).
pub fn compute_threads() -> usize {
    rayon::current_num_threads()
}
