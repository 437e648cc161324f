//! Few-row matrix products for decode: `y = x · Wᵀ` with `x` a handful of rows (one per path) and
//! `W` the `out × in` weight, f32, f16 or q8_0, streamed from memory exactly once per call.
//!
//! Why not candle's GEMM: for a few rows it packs the whole weight into its own layout first, so a
//! batched step reads (and writes) every weight twice or more, and 8 paths ran 5x slower per step
//! than one. Here each pair of weight rows is loaded once into registers/L1 and dotted with every
//! activation row, so one step costs about one pass over the weights whatever the path count.
//! f16 weights are widened to f32 in registers and accumulated in f32; q8_0 weights meet
//! activations quantized per block in integer dot products (`q8`). Where AVX-512 runs, a model's
//! f16 matrices are kept in panels of three rows interleaved by lines (`panels`), read by the
//! same kernels in the same order: one stream per thread instead of one per row of a group.
//! SIMD is chosen at run time from `super::cpu::features()`, in this one dispatch (`Simd`):
//! AVX-512 for 1 to 8 rows where the CPU has it (`avx512`; Intel and AMD Zen 4), AVX2+FMA+F16C
//! otherwise (`avx2`), a portable loop elsewhere. `examples/gemv_bench.rs` times these kernels
//! alone against the read bandwidth.

use std::sync::atomic::{AtomicU64, Ordering};

use half::f16;

/// Weight rows per task (one grab of the shared counter): enough to amortise the atomic, few
/// enough that a preempted thread holds the others up briefly.
pub(super) const ROWS_PER_TASK: usize = 64;

/// Above this many activation rows, a blocked GEMM (candle's) is the better tool.
pub const MAX_ROWS: usize = 16;

/// Element types a weight matrix may hold.
pub trait WeightElem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// Dot products of `R` activation rows with `RW` weight rows, using AVX2/FMA/F16C, hinting
    /// the lines of each weight row as `hint` says.
    ///
    /// # Safety
    /// The CPU must support avx2, fma and f16c; weight rows must have length `k` (x rows: `R·k`).
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(
        x: &[f32],
        k: usize,
        w: [&[Self]; RW],
        hint: Hint,
    ) -> [[f32; RW]; R];
    /// Dot products of `R` activation rows with `out.len()` groups of `RW` weight rows at `w`,
    /// taken in runs of `RW·s` rows, `s` apart (see `avx512::groups`), group `g`'s in
    /// `out[g][..R]`, using AVX-512 (32 registers: room for 8 rows × 3 weight rows of accumulators).
    ///
    /// # Safety
    /// The CPU must support avx512f, avx2, fma and f16c; `R ≤ 8`, `x.len() ≥ R·k`, `s ≥ 1`,
    /// `out.len()` a multiple of `s`, `w.len() ≥ out.len()·RW·k`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn groups_avx512<const R: usize, const RW: usize>(
        x: &[f32],
        k: usize,
        w: &[Self],
        s: usize,
        out: &mut [[[f32; RW]; 8]],
    );
}

impl WeightElem for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(
        x: &[f32],
        k: usize,
        w: [&[f32]; RW],
        hint: Hint,
    ) -> [[f32; RW]; R] {
        // SAFETY: the caller upholds `dots_avx2`'s contract, which is `avx2::dots`'s.
        unsafe { avx2::dots::<R, RW, f32>(x, k, w, hint) }
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn groups_avx512<const R: usize, const RW: usize>(
        x: &[f32],
        k: usize,
        w: &[f32],
        s: usize,
        out: &mut [[[f32; RW]; 8]],
    ) {
        // SAFETY: the caller upholds `groups_avx512`'s contract, which is `avx512::groups`'s.
        unsafe { avx512::groups::<R, RW, f32>(x, k, w, s, out) }
    }
}

impl WeightElem for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const R: usize, const RW: usize>(
        x: &[f32],
        k: usize,
        w: [&[f16]; RW],
        hint: Hint,
    ) -> [[f32; RW]; R] {
        // SAFETY: the caller upholds `dots_avx2`'s contract, which is `avx2::dots`'s.
        unsafe { avx2::dots::<R, RW, f16>(x, k, w, hint) }
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn groups_avx512<const R: usize, const RW: usize>(
        x: &[f32],
        k: usize,
        w: &[f16],
        s: usize,
        out: &mut [[[f32; RW]; 8]],
    ) {
        // SAFETY: the caller upholds `groups_avx512`'s contract, which is `avx512::groups`'s.
        unsafe { avx512::groups::<R, RW, f16>(x, k, w, s, out) }
    }
}

/// The kernel family a call runs: the widest the CPU has (`detect`), or one pinned by the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    Avx512,
    Avx2,
    Portable,
}

impl Simd {
    fn detect() -> Self {
        let f = super::cpu::features();
        if f.avx512 {
            Simd::Avx512
        } else if f.avx2 {
            Simd::Avx2
        } else {
            Simd::Portable
        }
    }
}

/// `y` of a call, shared by the tasks: each task writes only its own columns.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    /// Columns of `y` (the weight's rows).
    n: usize,
}
// SAFETY: tasks write disjoint columns of `y` (see `Out::put`), which outlives the pool call.
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// Sets `y[r][j]`.
    ///
    /// # Safety
    /// `r·n + j` must be inside `y`, and no other task may write column `j`.
    #[inline(always)]
    unsafe fn put(self, r: usize, j: usize, v: f32) {
        // SAFETY: the caller keeps the index in bounds and the column to itself.
        unsafe { *self.ptr.add(r * self.n + j) = v }
    }
}

/// `y[r·n + j] = Σᵢ x[r·k + i] · w[j·k + i]` for `m = x.len() / k` rows and `n = w.len() / k` outputs.
///
/// Runs on candle's barrier pool, the same threads its quantized kernels and element-wise ops use,
/// so a decode step never has a second pool's threads competing for the cores.
pub fn matmul_t<W: WeightElem>(x: &[f32], w: &[W], k: usize, y: &mut [f32]) {
    matmul_t_on(Simd::detect(), x, w, k, y, &Epilogue::default())
}

/// [`matmul_t`], then `epi` on each output (bias, GELU, residual), in the same tasks.
pub fn matmul_t_then<W: WeightElem>(x: &[f32], w: &[W], k: usize, y: &mut [f32], epi: &Epilogue) {
    matmul_t_on(Simd::detect(), x, w, k, y, epi)
}

fn matmul_t_on<W: WeightElem>(simd: Simd, x: &[f32], w: &[W], k: usize, y: &mut [f32], epi: &Epilogue) {
    let m = x.len() / k;
    let n = w.len() / k;
    assert!(x.len() == m * k && w.len() == n * k && y.len() == m * n, "gemv: mismatched lengths");
    epi.check(m, n);
    let out = Out { ptr: y.as_mut_ptr(), n };
    for_each_task(n, |j0, j1| {
        match simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => block512(x, m, k, w, j0, j1, out),
            _ => block(simd, x, m, k, w, j0, j1, out),
        }
        // SAFETY: `out` is y's m × n (asserted above, and `check`ed for epi); j0..j1 is this task's.
        unsafe { epi.apply(out, m, j0, j1) };
    });
}

/// Whether f16 weights are laid out as [`F16Panels`] on this CPU: where the AVX-512 kernels run
/// (the only ones with a panel walk). `COTSCOPE_F16_PANELS=0` keeps them in rows, to compare the
/// two in one sitting.
pub fn panels_wanted() -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var("COTSCOPE_F16_PANELS").is_ok_and(|v| v == "0"));
    Simd::detect() == Simd::Avx512 && !off
}

/// [`matmul_t_then`] for f16 weights in panels: the same values, bit for bit, as from the rows.
pub fn matmul_t_panels_then(x: &[f32], w: &F16Panels, y: &mut [f32], epi: &Epilogue) {
    matmul_t_panels_on(Simd::detect(), x, w, y, epi)
}

fn matmul_t_panels_on(simd: Simd, x: &[f32], w: &F16Panels, y: &mut [f32], epi: &Epilogue) {
    let (n, k) = (w.rows(), w.cols());
    let m = x.len() / k;
    assert!(x.len() == m * k && y.len() == m * n, "gemv: mismatched lengths");
    epi.check(m, n);
    let out = Out { ptr: y.as_mut_ptr(), n };
    // Tasks and shares in whole panels (a panel split between tasks would be read twice).
    for_each_task(w.panels(), |g0, g1| {
        match simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => panel_block512(x, m, w, g0, g1, out),
            _ => panel_block(simd, x, m, w, g0, g1, out),
        }
        let (j0, j1) = (g0 * panels::ROWS, n.min(g1 * panels::ROWS));
        // SAFETY: `out` is y's m × n (asserted above, and `check`ed for epi); j0..j1 is this task's.
        unsafe { epi.apply(out, m, j0, j1) };
    });
}

/// One task of [`matmul_t_panels_then`] with AVX-512: panels `g0..g1` (at most [`ROWS_PER_TASK`])
/// against all `m` rows of `x`, 8 at a time.
#[cfg(target_arch = "x86_64")]
fn panel_block512(x: &[f32], m: usize, w: &F16Panels, g0: usize, g1: usize, out: Out) {
    use panels::ROWS;
    let (k, k32, n) = (w.cols(), w.padded_cols(), w.rows());
    let ws = &w.values()[g0 * ROWS * k32..g1 * ROWS * k32];
    let mut res = [[[0f32; ROWS]; 8]; ROWS_PER_TASK];
    let res = &mut res[..g1 - g0];
    let mut r = 0;
    while r < m {
        let take = (m - r).min(8);
        let xs = &x[r * k..(r + take) * k];
        assert!(take <= 8 && xs.len() >= take * k && k <= k32 && ws.len() >= res.len() * ROWS * k32);
        // SAFETY: only `Simd::Avx512` (detected, or pinned by a test that checked it) reaches here;
        // lengths checked above.
        unsafe {
            match take {
                8 => avx512::panel_groups::<8>(xs, k, ws, k32, res),
                7 => avx512::panel_groups::<7>(xs, k, ws, k32, res),
                6 => avx512::panel_groups::<6>(xs, k, ws, k32, res),
                5 => avx512::panel_groups::<5>(xs, k, ws, k32, res),
                4 => avx512::panel_groups::<4>(xs, k, ws, k32, res),
                3 => avx512::panel_groups::<3>(xs, k, ws, k32, res),
                2 => avx512::panel_groups::<2>(xs, k, ws, k32, res),
                _ => avx512::panel_groups::<1>(xs, k, ws, k32, res),
            }
        }
        for (g, v) in res.iter().enumerate() {
            for (c, j) in ((g0 + g) * ROWS..n.min((g0 + g + 1) * ROWS)).enumerate() {
                for (i, v) in v[..take].iter().enumerate() {
                    // SAFETY: r + i < m and j < n; the rows of panels g0..g1 belong to this task.
                    unsafe { out.put(r + i, j, v[c]) };
                }
            }
        }
        r += take;
    }
}

/// [`panel_block512`] without AVX-512 (panels are made only where it runs, but the tests pin
/// every family): each row widened, then [`block`]'s kernels on it.
fn panel_block(simd: Simd, x: &[f32], m: usize, w: &F16Panels, g0: usize, g1: usize, out: Out) {
    let k = w.cols();
    let mut row = vec![0f32; k];
    for j in g0 * panels::ROWS..w.rows().min(g1 * panels::ROWS) {
        w.widen(j, 0, &mut row);
        // One weight row as f32 against all rows of x, into column j.
        let mut r = 0;
        while r < m {
            let take = (m - r).min(8);
            let d = dots_rows::<1, f32>(simd, &x[r * k..(r + take) * k], take, k, [&row[..]], Hint::whole(k));
            for (i, v) in d[..take].iter().enumerate() {
                // SAFETY: r + i < m, j < n; the rows of panels g0..g1 belong to this task.
                unsafe { out.put(r + i, j, v[0]) };
            }
            r += take;
        }
    }
}

/// Runs `f(j0, j1)` over `0..n` in tasks on candle's barrier pool: each thread takes the tasks of
/// its own contiguous share front to back, then the others' from their back ends.
///
/// Why not one shared counter: the threads then took alternate tasks, so each thread's reads
/// skipped the other's task every 64 rows and its prefetches ran into rows it would not read; in
/// its own share a thread reads one run of memory. Why not fixed shares: the pool's own chunking
/// handed out a sixteenth of the work per grab (a 64 MB slice of an f32 LM head), and a thread
/// the OS preempted in one (the cores are shared) held up the whole call; taking from the others'
/// back ends, the wait is one task's worth.
///
/// A share's tasks are [`ROWS_PER_TASK`] rows but for its last rows, which go in tasks of at most
/// [`TAIL_ROWS_PER_TASK`]: a call ends when the thread that started its last task latest finishes
/// it, and meanwhile the other has nothing to take. In a bloom-560m decode step the two threads
/// finished their calls 0.5–0.6 ms (q8_0), 0.9–1.0 ms (f16) and 1.8–2.1 ms (f32) apart in all with
/// 64-row tasks throughout, 0.29–0.31, 0.29–0.56 and 0.99–1.19 ms with the tails split
/// (BENCHMARKS.md, Round 24). Only the tails are small, so the bulk keeps its long runs.
fn for_each_task(n: usize, f: impl Fn(usize, usize) + Sync) {
    let pool = candle_core::utils::barrier_pool();
    let tasks = Tasks::new(n, pool_threads());
    let shares = Shares::new(&tasks.shares);
    let run = |t: usize| {
        let (j0, j1) = tasks.rows(t);
        f(j0, j1);
    };
    // One item per thread, but each thread starts on the share of its place in the pool, so the
    // thread that hints a matrix's rows into its L2 ahead of the call (`decode_attention`) is the one
    // that reads them. A thread called twice (the other started late) takes nothing the second time.
    pool.execute_chunked(shares.len(), |_| {
        let i = pool_place() % shares.len();
        while let Some(t) = shares.front(i) {
            run(t);
        }
        for o in 1..shares.len() {
            let j = (i + o) % shares.len();
            while let Some(t) = shares.back(j) {
                run(t);
            }
        }
    });
}

/// This thread's place among those running candle's barrier pool's jobs: `i + 1` for the pool's
/// worker `i`, 0 for any other (the thread that calls the jobs). Read from the workers' names
/// (`candle-bp-i`, candle 0.11): were they to change, every thread would be 0, and each would
/// still get a share of the tasks, only not the one its hints were for.
pub(crate) fn pool_place() -> usize {
    thread_local! {
        static PLACE: usize = std::thread::current()
            .name()
            .and_then(|n| n.strip_prefix("candle-bp-"))
            .and_then(|i| i.parse::<usize>().ok())
            .map_or(0, |i| i + 1);
    }
    PLACE.with(|p| *p)
}

/// The threads a gemv call runs on: the caller and the barrier pool's workers. The shares of
/// [`Tasks`] and of `Linear::share_spans` are counted from it, so that hints land on their readers.
pub(crate) fn pool_threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// Rows of share `i` of `parts` of a call over `n` rows (see [`Tasks`]), the thread at place `i`
/// starts on.
pub(crate) fn share_rows(n: usize, i: usize, parts: usize) -> std::ops::Range<usize> {
    let parts = parts.max(1);
    let units = n.div_ceil(ROWS_PER_TASK);
    let row = |u: usize| n.min(u * ROWS_PER_TASK);
    row(units * i / parts)..row(units * (i + 1) / parts)
}

/// Rows of a share's last tasks (see [`for_each_task`]).
const TAIL_ROWS_PER_TASK: usize = 16;

/// The tasks of a call over `n` rows in `parts` contiguous shares of [`ROWS_PER_TASK`]-row units:
/// task `t` is rows `starts[t]..starts[t + 1]`, and share `i` holds tasks `shares[i].0..shares[i].1`.
struct Tasks {
    starts: Vec<usize>,
    shares: Vec<(usize, usize)>,
}

impl Tasks {
    fn new(n: usize, parts: usize) -> Self {
        let parts = parts.max(1);
        let mut starts = vec![0];
        let mut shares = Vec::with_capacity(parts);
        // Shares of whole ROWS_PER_TASK-row units (the last one short), as the tasks were before
        // tails were split: a small matrix is not cut into slivers.
        for i in 0..parts {
            let std::ops::Range { start: a, end: b } = share_rows(n, i, parts);
            let first = starts.len() - 1;
            // Whole tasks up to the last ROWS_PER_TASK rows (or fewer), then small ones.
            let big = (b - a).saturating_sub(ROWS_PER_TASK) / ROWS_PER_TASK;
            let mut at = a;
            for _ in 0..big {
                at += ROWS_PER_TASK;
                starts.push(at);
            }
            // The rest in nearly equal parts of at most TAIL_ROWS_PER_TASK: none of a row or two
            // where the rest allows more (the AVX-512 kernels take a task in groups of up to 3 rows).
            let (rest, parts) = (b - at, (b - at).div_ceil(TAIL_ROWS_PER_TASK));
            for p in 1..=parts {
                starts.push(at + rest * p / parts);
            }
            shares.push((first, starts.len() - 1));
        }
        Self { starts, shares }
    }

    fn rows(&self, t: usize) -> (usize, usize) {
        (self.starts[t], self.starts[t + 1])
    }
}

/// Tasks in contiguous shares, each a pair of cursors (next at the front, end at the back) in one
/// atomic word, so a task is taken from either end exactly once.
struct Shares(Vec<Cursor>);

/// One share's cursors, alone in their cache lines (128 bytes: a pair of lines, as the
/// adjacent-line prefetcher fetches them), so a thread taking its own next task does not take the
/// line from the thread working the next share (`gemv_bench` showed no difference beyond noise).
#[repr(align(128))]
struct Cursor(AtomicU64);

impl Shares {
    /// One share for each range of task indices.
    fn new(ranges: &[(usize, usize)]) -> Self {
        Self(ranges.iter().map(|&(a, b)| Cursor(AtomicU64::new(Self::pack(a, b)))).collect())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn pack(front: usize, back: usize) -> u64 {
        ((front as u64) << 32) | back as u64
    }

    /// Takes a task from share `i`: its first (`from_front`) or its last; `None` once it is empty.
    fn take(&self, i: usize, from_front: bool) -> Option<usize> {
        let cell = &self.0[i].0;
        let mut cur = cell.load(Ordering::Relaxed);
        loop {
            let (a, b) = ((cur >> 32) as usize, (cur & 0xffff_ffff) as usize);
            if a >= b {
                return None;
            }
            let (next, task) = if from_front { (Self::pack(a + 1, b), a) } else { (Self::pack(a, b - 1), b - 1) };
            match cell.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(task),
                Err(now) => cur = now,
            }
        }
    }

    fn front(&self, i: usize) -> Option<usize> {
        self.take(i, true)
    }

    fn back(&self, i: usize) -> Option<usize> {
        self.take(i, false)
    }
}

/// One task with AVX-512: all `m` rows of `x` against weight rows `j0..j1`, in groups of 2 weight
/// rows (of 1 for one row of f32 weights), or of 3 for more than 4 rows of f16 weights: 8
/// activation rows × 3 weight rows fill 24 of the 32 registers with accumulators, and each
/// activation load feeds 3 FMAs. In
/// `examples/gemv_bench` that stepped 8 paths ~13% faster on f16, where half the bytes per weight
/// leave the loop short of load slots; on f32 (bound by memory) and for one path it was no faster.
/// For up to 8 paths each weight is read once, in order. A row's result is the same whatever `m`
/// and the group size (see `avx512::dots`), so a path decodes the same alone or in a batch.
#[cfg(target_arch = "x86_64")]
fn block512<W: WeightElem>(x: &[f32], m: usize, k: usize, w: &[W], j0: usize, j1: usize, out: Out) {
    if m == 1 && std::mem::size_of::<W>() == 4 {
        // One f32 row: the weight rows one at a time, one stream per thread. In `gemv_bench f32 1`
        // on Zen 4 that stepped faster in 6 of 8 alternating pairs, by ~4% at the median pair
        // (BENCHMARKS.md, Round 29). Its one FMA chain, 4 cycles a 64-byte line, outruns memory.
        return block512_groups::<1, W>(x, m, k, w, j0, j1, out);
    }
    if m > 4 && std::mem::size_of::<W>() < 4 {
        block512_groups::<3, W>(x, m, k, w, j0, j1, out)
    } else {
        block512_groups::<2, W>(x, m, k, w, j0, j1, out)
    }
}

/// [`block512`] with groups of `RW` weight rows.
#[cfg(target_arch = "x86_64")]
fn block512_groups<const RW: usize, W: WeightElem>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[W],
    j0: usize,
    j1: usize,
    out: Out,
) {
    if j1 - j0 < RW {
        return block(Simd::Avx2, x, m, k, w, j0, j1, out);
    }
    // One row of f16 weights: runs of groups taken `s` rows apart (see [`ONE_F16_ROW_RUN_BYTES`]).
    // Which rows make a group changes no result (see `avx512::dots`).
    let s = if m == 1 && std::mem::size_of::<W>() == 2 { stride::<W>(k, RW, ONE_F16_ROW_RUN_BYTES) } else { 1 };
    let strided = (j1 - j0) / (RW * s) * s;
    let rest = j0 + strided * RW;
    // Whole runs from j0, whole groups of consecutive rows from `rest`, then a short last group
    // overlapping the one before it, whose rows are computed (identically) again.
    let full = (j1 - rest) / RW;
    let mut res = [[[0f32; RW]; 8]; ROWS_PER_TASK];
    let mut r = 0;
    while r < m {
        let take = (m - r).min(8);
        let xs = &x[r * k..(r + take) * k];
        // Group `g` of a walk from row `p` with stride `s` holds rows `p + (g / s)·RW·s + g % s + s·c`.
        let put = |p: usize, s: usize, res: &[[[f32; RW]; 8]]| {
            for (g, v) in res.iter().enumerate() {
                let first = p + g / s * RW * s + g % s;
                for (i, v) in v[..take].iter().enumerate() {
                    for (c, &e) in v.iter().enumerate() {
                        // SAFETY: r + i < m and first + s·c < j1 ≤ n; columns j0..j1 belong to this task.
                        unsafe { out.put(r + i, first + s * c, e) };
                    }
                }
            }
        };
        if strided > 0 {
            groups512::<RW, W>(xs, take, k, &w[j0 * k..rest * k], s, &mut res[..strided]);
            put(j0, s, &res[..strided]);
        }
        groups512::<RW, W>(xs, take, k, &w[rest * k..(rest + full * RW) * k], 1, &mut res[..full]);
        put(rest, 1, &res[..full]);
        if rest + full * RW < j1 {
            let p = j1 - RW;
            groups512::<RW, W>(xs, take, k, &w[p * k..j1 * k], 1, &mut res[..1]);
            put(p, 1, &res[..1]);
        }
        r += take;
    }
}

/// `W::groups_avx512` for a run-time row count `m` ≤ 8.
#[cfg(target_arch = "x86_64")]
fn groups512<const RW: usize, W: WeightElem>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[W],
    s: usize,
    out: &mut [[[f32; RW]; 8]],
) {
    assert!(m <= 8 && x.len() >= m * k && w.len() >= out.len() * RW * k);
    assert!(s >= 1 && out.len().is_multiple_of(s));
    // SAFETY: only `Simd::Avx512` (detected, or pinned by a test that checked it) reaches here;
    // lengths checked above.
    unsafe {
        match m {
            8 => W::groups_avx512::<8, RW>(x, k, w, s, out),
            7 => W::groups_avx512::<7, RW>(x, k, w, s, out),
            6 => W::groups_avx512::<6, RW>(x, k, w, s, out),
            5 => W::groups_avx512::<5, RW>(x, k, w, s, out),
            4 => W::groups_avx512::<4, RW>(x, k, w, s, out),
            3 => W::groups_avx512::<3, RW>(x, k, w, s, out),
            2 => W::groups_avx512::<2, RW>(x, k, w, s, out),
            _ => W::groups_avx512::<1, RW>(x, k, w, s, out),
        }
    }
}

/// One task without AVX-512: all `m` rows of `x` against weight rows `j0..j1`.
///
/// Weight rows go in groups of `RW` so that `R·RW` independent accumulators hide the FMA latency:
/// 4 weight rows for 1 or 2 activation rows, 2 for more, taken 4 activation rows at a time (which
/// rows make a group: see [`groups`]). A group's rows are read from memory once, in order, and
/// stay in L1 for the next 4 activation rows: with 16 registers, 8 rows against 1 weight row (as
/// this ran before) did one fused multiply-add per activation load, and 8 f32 paths stepped at 3x
/// one path's time on Zen 3.
///
/// For 5 to 8 rows of f32 weights, groups of 3 (12 accumulators, 3 weights and an activation: all
/// 16 registers) read each activation line for 3 weight rows instead of 2. In `gemv_bench` on Zen 3
/// that took 8 rows from 139 to 130 ms (paired median 1.08 over 14 alternating pairs; the decode
/// step 1.05 over 5). At 4 rows it gained nothing, and f16 weights, whose widening needs a
/// register, ran 30% slower.
#[allow(clippy::too_many_arguments)]
fn block<W: WeightElem>(simd: Simd, x: &[f32], m: usize, k: usize, w: &[W], j0: usize, j1: usize, out: Out) {
    let done = match m {
        1 | 2 => groups::<4, W>(simd, x, m, k, w, j0, j1, out),
        5.. if std::mem::size_of::<W>() == 4 => groups::<3, W>(simd, x, m, k, w, j0, j1, out),
        _ => groups::<2, W>(simd, x, m, k, w, j0, j1, out),
    };
    for j in done..j1 {
        let mut r = 0;
        while r < m {
            let take = (m - r).min(8);
            let xs = &x[r * k..(r + take) * k];
            let d = dots_rows::<1, W>(simd, xs, take, k, [&w[j * k..(j + 1) * k]], Hint::whole(k));
            for (i, v) in d[..take].iter().enumerate() {
                // SAFETY: r + i < m, j < j1 ≤ n; columns j0..j1 belong to this task.
                unsafe { out.put(r + i, j, v[0]) };
            }
            r += take;
        }
    }
}

/// Bytes of consecutive weight rows each stream of a group reads before the group moves on.
///
/// Why: with f16 rows of 1024 values (2 KiB), a group of 4 consecutive rows made 4 streams two to a
/// 4 KiB page, and on Zen 3 such a kernel read memory at 72–75% of the rate of one plain stream;
/// with each stream running through 16 KiB of consecutive rows (the group's rows `s` apart, taken
/// in `s` phases), it read at the plain stream's rate.
pub(crate) const STREAM_RUN_BYTES: usize = 16 << 10;

/// [`STREAM_RUN_BYTES`] for one activation row of f16 weights on AVX-512 CPUs, whose groups of 2
/// weight rows are otherwise adjacent rows (`block512`).
///
/// Why: on a Zen 5 EPYC (family 26), with 2 KiB rows, one f16 row read memory at 0.68–0.74 of
/// the bandwidth probe while f32 and q8_0 read at ~0.9; in runs of 32 KiB (16 rows a stream), with
/// the hints of `avx512::dots` for one f16 row, it read at ~0.8 (`gemv_bench f16 1`, alternating
/// runs; BENCHMARKS.md, Round 26). 16 KiB runs gained less.
pub(crate) const ONE_F16_ROW_RUN_BYTES: usize = 32 << 10;

/// Rows apart a group of `rw` rows of `k` values of `W` takes its rows for runs of `run` bytes (see
/// [`STREAM_RUN_BYTES`]); a whole run of `rw·s` rows fits a task.
fn stride<W>(k: usize, rw: usize, run: usize) -> usize {
    (run / (k * std::mem::size_of::<W>()).max(1)).clamp(1, ROWS_PER_TASK / rw)
}

/// Weight rows from `j0` in groups of `RW` against all `m` activation rows, 4 at a time; returns
/// the first weight row not done.
///
/// Runs of `RW·s` rows go in `s` phases, phase `p` taking rows `j + p + s·c` (`c < RW`): stream `c`
/// reads rows `j + s·c ..` one after another, so each of the group's streams runs through
/// consecutive memory (see [`STREAM_RUN_BYTES`]). Each row's lines are hinted where the stream is
/// read next: the following row at the same offset, or, after the last phase, the next run's.
/// The rest of the task goes in groups of consecutive rows, as all of it does where `s = 1`. A
/// row's sums do not depend on its group, so the order changes no result.
#[allow(clippy::too_many_arguments)]
fn groups<const RW: usize, W: WeightElem>(
    simd: Simd,
    x: &[f32],
    m: usize,
    k: usize,
    w: &[W],
    j0: usize,
    j1: usize,
    out: Out,
) -> usize {
    // Each pass over the group hints its own part of the next rows, so the memory is kept busy
    // through every pass, not only the first (see [`Hint`]).
    let parts = m.div_ceil(4);
    let group = |rows: [usize; RW], ahead: usize| {
        let ws: [&[W]; RW] = std::array::from_fn(|c| &w[rows[c] * k..(rows[c] + 1) * k]);
        for r0 in (0..m).step_by(4) {
            let take = (m - r0).min(4);
            let hint = Hint { ahead, part: r0 / 4, parts };
            let d = dots_rows::<RW, W>(simd, &x[r0 * k..(r0 + take) * k], take, k, ws, hint);
            for (r, v) in d[..take].iter().enumerate() {
                for (&j, &e) in rows.iter().zip(v) {
                    // SAFETY: r0 + r < m, j < j1 ≤ n; columns j0..j1 belong to this task.
                    unsafe { out.put(r0 + r, j, e) };
                }
            }
        }
    };
    let s = stride::<W>(k, RW, STREAM_RUN_BYTES);
    let mut j = j0;
    while j + RW * s <= j1 {
        for p in 0..s {
            let ahead = if p + 1 < s { k } else { (RW * s - s + 1) * k };
            group(std::array::from_fn(|c| j + p + s * c), ahead);
        }
        j += RW * s;
    }
    while j + RW <= j1 {
        group(std::array::from_fn(|c| j + c), RW * k);
        j += RW;
    }
    j
}

/// Which lines of a weight row a kernel call hints into L1: those `ahead` values on, in part `part`
/// of `parts` equal parts of the row, one line per `parts` lines the call reads.
///
/// Why parts: 5 to 8 activation rows go over a group of weight rows in two passes of 4, and the
/// second pass reads the rows from L1. When every pass hinted the whole next row, the second one's
/// hints were all for lines already on their way: the memory went idle for half of every group. With
/// each pass hinting its own half, `gemv_bench f32 8` on Zen 3 stepped in 110–117 ms against
/// 125–138 ms (best of 10, 4 alternating pairs).
#[derive(Clone, Copy, Debug)]
pub struct Hint {
    /// Values on from the position being read.
    pub ahead: usize,
    /// This call's part, `< parts`.
    pub part: usize,
    /// Parts the row is hinted in, one per pass over it (1: the whole row).
    pub parts: usize,
}

impl Hint {
    /// The whole row, `ahead` values on.
    pub(crate) fn whole(ahead: usize) -> Self {
        Self { ahead, part: 0, parts: 1 }
    }
}

/// `dots` for a run-time row count `m` ≤ 8 (unused entries of the result are zero).
fn dots_rows<const RW: usize, W: WeightElem>(
    simd: Simd,
    x: &[f32],
    m: usize,
    k: usize,
    w: [&[W]; RW],
    hint: Hint,
) -> [[f32; RW]; 8] {
    let mut d = [[0f32; RW]; 8];
    match m {
        8 => d = dots::<8, RW, W>(simd, x, k, w, hint),
        7 => d[..7].copy_from_slice(&dots::<7, RW, W>(simd, x, k, w, hint)),
        6 => d[..6].copy_from_slice(&dots::<6, RW, W>(simd, x, k, w, hint)),
        5 => d[..5].copy_from_slice(&dots::<5, RW, W>(simd, x, k, w, hint)),
        4 => d[..4].copy_from_slice(&dots::<4, RW, W>(simd, x, k, w, hint)),
        3 => d[..3].copy_from_slice(&dots::<3, RW, W>(simd, x, k, w, hint)),
        2 => d[..2].copy_from_slice(&dots::<2, RW, W>(simd, x, k, w, hint)),
        _ => d[..1].copy_from_slice(&dots::<1, RW, W>(simd, x, k, w, hint)),
    }
    d
}

fn dots<const R: usize, const RW: usize, W: WeightElem>(
    simd: Simd,
    x: &[f32],
    k: usize,
    w: [&[W]; RW],
    hint: Hint,
) -> [[f32; RW]; R] {
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Portable {
        // SAFETY: AVX2/FMA/F16C were detected (AVX-512 implies them, see `cpu`), or a test pinned
        // this path after checking; lengths are as `dots_avx2` requires.
        return unsafe { W::dots_avx2::<R, RW>(x, k, w, hint) };
    }
    let _ = (simd, hint);
    let mut out = [[0f32; RW]; R];
    for (r, o) in out.iter_mut().enumerate() {
        let xr = &x[r * k..(r + 1) * k];
        for (c, wc) in w.iter().enumerate() {
            o[c] = xr.iter().zip(wc.iter()).map(|(a, b)| a * b.to_f32()).sum();
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod avx2;

mod q8;
pub use q8::{matmul_t_q8, matmul_t_q8_then, Q8Weights};

mod epilogue;
pub use epilogue::Epilogue;

mod panels;
pub use panels::F16Panels;

#[cfg(target_arch = "x86_64")]
mod avx512_vnni;

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_hand_out_each_task_once_from_either_end() {
        let s = Shares::new(&[(0, 2), (2, 5)]);
        assert_eq!((s.front(0), s.front(0), s.front(0)), (Some(0), Some(1), None));
        assert_eq!((s.back(1), s.front(1), s.back(1), s.front(1)), (Some(4), Some(2), Some(3), None));
        assert_eq!(Shares::new(&[(0, 0); 3]).front(2), None);
        // Threads taking their own shares from the front and the others' from the back, at once.
        let (n, parts) = (10_000, 3);
        let s = Shares::new(&[(0, n / 3), (n / 3, 2 * n / 3), (2 * n / 3, n)]);
        let taken: Vec<usize> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..parts)
                .map(|i| {
                    let s = &s;
                    sc.spawn(move || {
                        let mut got: Vec<usize> = std::iter::from_fn(|| s.front(i)).collect();
                        for o in 1..parts {
                            got.extend(std::iter::from_fn(|| s.back((i + o) % parts)));
                        }
                        got
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = taken.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn a_thread_s_place_comes_from_the_pool_s_worker_names() {
        let place =
            |name: &str| std::thread::Builder::new().name(name.to_string()).spawn(pool_place).unwrap().join().unwrap();
        assert_eq!((place("candle-bp-0"), place("candle-bp-3")), (1, 4));
        assert_eq!((place("main"), place("candle-bp-x"), place("tokio-runtime-worker")), (0, 0, 0));
        // In a job, each of the pool's threads has its own place, the caller's 0 among them.
        let seen = std::sync::Mutex::new(Vec::new());
        candle_core::utils::barrier_pool().execute(|_| seen.lock().unwrap().push(pool_place()));
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..pool_threads()).collect::<Vec<_>>());
    }

    #[test]
    fn tasks_cover_each_row_once_and_end_each_share_small() {
        for (n, parts) in [(0, 2), (1, 2), (5, 3), (64, 2), (130, 2), (1024, 2), (4096, 2), (250_880, 2), (1000, 3)] {
            let t = Tasks::new(n, parts);
            assert_eq!(t.shares.len(), parts);
            // Consecutive, non-empty tasks from 0 to n; shares consecutive and covering them all.
            assert_eq!((t.starts[0], *t.starts.last().unwrap()), (0, n), "{n} rows");
            assert!(t.starts.windows(2).all(|w| w[0] < w[1]), "{n} rows: {:?}", t.starts);
            assert_eq!((t.shares[0].0, t.shares[parts - 1].1), (0, t.starts.len() - 1));
            assert!(t.shares.windows(2).all(|w| w[0].1 == w[1].0));
            let units = n.div_ceil(ROWS_PER_TASK);
            for (i, &(a, b)) in t.shares.iter().enumerate() {
                // Each share holds its even part of the 64-row units.
                let unit = |u: usize| n.min(u * ROWS_PER_TASK);
                let want = (unit(units * i / parts), unit(units * (i + 1) / parts));
                assert_eq!((t.starts[a], t.starts[b]), want, "{n} rows, share {i}");
                let sizes: Vec<usize> = (a..b).map(|x| t.rows(x).1 - t.rows(x).0).collect();
                assert!(sizes.iter().all(|&s| s <= ROWS_PER_TASK), "{n}: {sizes:?}");
                // The last ROWS_PER_TASK rows of a share (or all of a smaller one) go in small tasks.
                let tail: Vec<usize> = sizes.iter().rev().copied().take_while(|&s| s <= TAIL_ROWS_PER_TASK).collect();
                let rows: usize = sizes.iter().sum();
                assert!(tail.iter().sum::<usize>() >= ROWS_PER_TASK.min(rows), "{n}: {sizes:?}");
                // ... of at least half that, where the share has that many rows.
                assert!(tail.iter().all(|&s| s >= (TAIL_ROWS_PER_TASK / 2).min(rows)), "{n}: {sizes:?}");
            }
        }
    }

    fn naive(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
        let (m, n) = (x.len() / k, w.len() / k);
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                y[r * n + j] = (0..k).map(|i| x[r * k + i] * w[j * k + i]).sum();
            }
        }
        y
    }

    /// Every kernel family this CPU can run (the portable loop runs everywhere).
    fn families() -> Vec<Simd> {
        let f = super::super::cpu::features();
        let mut v = vec![Simd::Portable];
        if f.avx2 {
            v.push(Simd::Avx2);
        }
        if f.avx512 {
            v.push(Simd::Avx512);
        }
        v
    }

    fn acts(m: usize, k: usize) -> Vec<f32> {
        (0..m * k).map(|i| ((i * 7 % 23) as f32 - 11.0) / 10.0).collect()
    }

    fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0f32, f32::max)
    }

    #[test]
    fn every_family_matches_naive_for_ragged_shapes() {
        let mut shapes = vec![(1, 1, 1), (1, 7, 13), (3, 130, 64), (5, 129, 100), (8, 300, 1024), (16, 65, 40)];
        // 1..8 rows against odd widths and row counts that leave a partial pair and a partial task.
        shapes.extend((1..=8).map(|m| (m, 131, 47 + 16 * m)));
        shapes.extend([(2, 3, 31), (7, 2, 33), (9, 67, 17), (4, 1, 64)]);
        // Tasks that end in runs of strided groups, then consecutive groups, then single rows.
        shapes.extend([(1, 100, 512), (2, 123, 1024), (5, 87, 2048)]);
        // One row in 64-row tasks: f16 at AVX-512 walks strided runs (`ONE_F16_ROW_RUN_BYTES`).
        shapes.extend([(1, 300, 64), (1, 260, 1024), (1, 200, 1000)]);
        for simd in families() {
            for &(m, n, k) in &shapes {
                let x = acts(m, k);
                let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 16.0).collect();
                let want = naive(&x, &w, k);
                let mut y = vec![0f32; m * n];
                matmul_t_on(simd, &x, &w, k, &mut y, &Epilogue::default());
                let d = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-3 * (k as f32).sqrt(), "f32 {simd:?} {m}x{n}x{k}: {d}");
                // The f16 weights here are exact (multiples of 1/16), so only summation order differs.
                let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                let mut yh = vec![0f32; m * n];
                matmul_t_on(simd, &x, &wh, k, &mut yh, &Epilogue::default());
                let d = yh.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-3 * (k as f32).sqrt(), "f16 {simd:?} {m}x{n}x{k}: {d}");
            }
        }
    }

    /// f16 weights give the same outputs in panels as in rows: with AVX-512 bit for bit (the same
    /// operations in the same order), elsewhere to rounding; for odd row counts, widths that are not
    /// whole lines, every row count up to 16, and with an epilogue.
    #[test]
    fn panels_give_the_rows_outputs() {
        let shapes = [(1, 1), (3, 32), (5, 33), (131, 96), (129, 100), (300, 64), (261, 1024), (67, 17), (1000, 48)];
        for simd in families() {
            for &(n, k) in &shapes {
                let wh: Vec<f16> = (0..n * k).map(|i| f16::from_f32(((i * 5 % 17) as f32 - 8.0) / 16.0)).collect();
                let panels = F16Panels::from_rows(&wh, k);
                let bias: Vec<f32> = (0..n).map(|j| j as f32 / 7.0 - 3.0).collect();
                for m in [1, 2, 3, 4, 5, 8, 9, 16] {
                    let x = acts(m, k);
                    let res: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32 - 2.0).collect();
                    let epi = Epilogue { bias: Some(&bias), gelu: m % 2 == 0, residual: Some(&res) };
                    let (mut rows, mut pan) = (vec![0f32; m * n], vec![1f32; m * n]);
                    matmul_t_on(simd, &x, &wh, k, &mut rows, &epi);
                    matmul_t_panels_on(simd, &x, &panels, &mut pan, &epi);
                    if simd == Simd::Avx512 {
                        assert!(rows.iter().zip(&pan).all(|(a, b)| a.to_bits() == b.to_bits()), "{m}x{n}x{k}");
                    } else {
                        let d = max_rel(&pan, &rows);
                        assert!(d < 1e-5, "{simd:?} {m}x{n}x{k}: {d}");
                    }
                }
            }
        }
    }

    /// A path decodes the same alone or in a batch: with AVX-512 bit for bit (every row runs the
    /// same operations whatever the row count), elsewhere to rounding.
    #[test]
    fn batch_rows_equal_single_rows() {
        for simd in families() {
            let tol = if simd == Simd::Avx512 { 0.0 } else { 1e-5 };
            for &(n, k) in &[(131, 96), (64, 1024), (3, 32), (300, 64), (260, 1024)] {
                let x = acts(8, k);
                let wf: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 17) as f32 - 8.0) / 16.0).collect();
                let wh: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
                for m in 1..=8 {
                    let xs = &x[..m * k];
                    let mut y = [vec![0f32; m * n], vec![0f32; m * n]];
                    matmul_t_on(simd, xs, &wf, k, &mut y[0], &Epilogue::default());
                    matmul_t_on(simd, xs, &wh, k, &mut y[1], &Epilogue::default());
                    for r in 0..m {
                        let xr = &x[r * k..(r + 1) * k];
                        let mut one = [vec![0f32; n], vec![0f32; n]];
                        matmul_t_on(simd, xr, &wf, k, &mut one[0], &Epilogue::default());
                        matmul_t_on(simd, xr, &wh, k, &mut one[1], &Epilogue::default());
                        for (kind, (a, b)) in ["f32", "f16"].iter().zip(y.iter().zip(&one)) {
                            let d = max_rel(&a[r * n..(r + 1) * n], b);
                            assert!(d <= tol, "{kind} {simd:?} row {r} of {m}, {n}x{k}: {d}");
                        }
                    }
                }
            }
        }
    }
}
