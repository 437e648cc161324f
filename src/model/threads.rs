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

/// Runs `f(i, chunk)` for each `size`-value chunk `i` of `y` (the last may be shorter) on candle's
/// barrier pool, each chunk handed to one unit of work: element-wise passes that write disjoint
/// parts of one output.
pub(crate) fn for_each_chunk_mut<T: Send>(y: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let (n, size) = (y.len(), size.max(1));
    let base = y.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(size), |units| {
        for i in units {
            let lo = i * size;
            // SAFETY: chunk i (`lo..min(n, lo + size)`) lies inside `y`, which outlives the call, and
            // the pool hands each unit to exactly one thread, so no two slices overlap.
            let chunk = unsafe { std::slice::from_raw_parts_mut((base as *mut T).add(lo), size.min(n - lo)) };
            f(i, chunk);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_chunk_is_visited_once_with_its_index() {
        for (n, size) in [(0, 4), (1, 4), (10, 4), (64, 16), (1000, 7)] {
            let mut y = vec![0usize; n];
            super::for_each_chunk_mut(&mut y, size, |i, c| {
                for (j, v) in c.iter_mut().enumerate() {
                    *v += i * size + j + 1;
                }
            });
            assert!(y.iter().enumerate().all(|(k, &v)| v == k + 1), "{n} by {size}");
        }
    }
}
