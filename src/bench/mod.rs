//! What `cotscope bench` measures: load, prefill and batched decode through the engine's
//! [`DecoderModel`] interface (one prefill, fork to N rows, N-row steps, as the local engine runs
//! paths), the peak resident memory, and the machine's read bandwidth to put the decode rate
//! against the bound it sets (every weight is streamed once per step).

pub mod eval_scenario;
pub mod question_switch;

use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Serialize;

use crate::engine::sampler::argmax;
use crate::engine::{DecoderModel, EngineError};
use crate::model::random::RandomWeights;
use crate::model::{self, BloomDecoder, Config, LoadOptions};

/// A model under test and what the bound needs to know about it.
pub struct BenchModel {
    pub model: Box<dyn DecoderModel>,
    pub n_params: usize,
    pub weight_bytes: usize,
    pub decode_bytes_per_step: usize,
    /// Bytes of keys and values per cached position (all layers).
    pub kv_bytes_per_token: usize,
}

/// Builds a model of a published shape from random weights, tensor by tensor (quantized as each is
/// made when `opts.quantize` is set, so no f32 copy of the whole model exists).
pub fn random_model(cfg: &Config, opts: &LoadOptions) -> candle_core::Result<BenchModel> {
    let vb = VarBuilder::from_backend(Box::new(RandomWeights::new(0)), opts.read_dtype(), Device::Cpu);
    let bloom = model::build_with(cfg, vb, opts)?;
    Ok(BenchModel {
        n_params: cfg.n_params(),
        weight_bytes: bloom.weight_bytes(),
        decode_bytes_per_step: bloom.decode_bytes_per_step(),
        kv_bytes_per_token: bloom.kv_bytes_per_token(),
        model: Box::new(BloomDecoder::with_prefix_cache(bloom, opts.prefix_cache_bytes())),
    })
}

/// One decode measurement: `paths` rows stepped together.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeRun {
    pub paths: usize,
    pub prefill_s: f64,
    /// CPU seconds per wall second during the prefill (see `decode_cpu_util`).
    pub prefill_cpu_util: Option<f64>,
    /// Tokens of all paths together per second.
    pub decode_tok_s: f64,
    pub step_ms: f64,
    /// The fastest and the median of the run's steps: on a shared host the memory's rate moves
    /// from step to step, and `step_ms` (the mean) carries the slow moments.
    pub step_ms_best: f64,
    pub step_ms_median: f64,
    /// CPU seconds used per wall second while decoding: about the thread count when the cores were
    /// ours, less when other processes competed for them (then the figures understate the engine).
    pub decode_cpu_util: Option<f64>,
    /// Steps per second against the bandwidth bound on steps per second (filled in by the caller).
    pub fraction_of_bound: Option<f64>,
    /// The same against the bound the probe's median pass sets instead of its best (filled in by
    /// the caller): where the host's bandwidth moves from pass to pass, the best pass is a moment the
    /// steps, timed over the whole run, seldom all get, and this figure says how much of the gap
    /// to the bound is that.
    pub fraction_of_median_bandwidth: Option<f64>,
    /// Bytes of keys and values a step of this run reads on average: the prompt's once (its rows
    /// share it) and each row's own positions (filled in by the caller).
    pub kv_bytes_per_step: Option<usize>,
}

/// Prefills `prompt`, forks it into `paths` rows and runs `new_tokens` greedy steps on all of them.
pub fn run_decode(
    m: &mut dyn DecoderModel,
    prompt: &[u32],
    new_tokens: usize,
    paths: usize,
) -> Result<DecodeRun, EngineError> {
    let (cpu_p, t0) = (cpu_seconds(), Instant::now());
    let logits = m.prefill(prompt)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let prefill_cpu_util = cpu_p.zip(cpu_seconds()).map(|(a, b)| (b - a) / prefill_s.max(1e-9));
    let first = argmax(&logits).unwrap_or(0);
    if paths > 1 {
        m.fork(paths)?;
    }
    let mut next = vec![first; paths];
    let cpu0 = cpu_seconds();
    let t1 = Instant::now();
    let mut steps = Vec::with_capacity(new_tokens);
    for _ in 0..new_tokens {
        let t = Instant::now();
        let rows = m.step(&next)?;
        next = rows.iter().map(|r| argmax(r).unwrap_or(0)).collect();
        steps.push(1e3 * t.elapsed().as_secs_f64());
    }
    let decode_s = t1.elapsed().as_secs_f64().max(1e-9);
    steps.sort_by(f64::total_cmp);
    let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| (b - a) / decode_s);
    Ok(DecodeRun {
        paths,
        prefill_s,
        prefill_cpu_util,
        decode_tok_s: (paths * new_tokens) as f64 / decode_s,
        step_ms: 1e3 * decode_s / new_tokens.max(1) as f64,
        step_ms_best: steps.first().copied().unwrap_or(0.0),
        step_ms_median: steps.get(steps.len() / 2).copied().unwrap_or(0.0),
        decode_cpu_util: cpu,
        fraction_of_bound: None,
        fraction_of_median_bandwidth: None,
        kv_bytes_per_step: None,
    })
}

/// A deterministic prompt of `n` ids in `5..min(1000, vocab)`, away from the special tokens.
pub fn synthetic_prompt(n: usize, vocab: usize) -> Vec<u32> {
    let hi = vocab.clamp(6, 1000) as u64;
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (5 + s % (hi - 5)) as u32
        })
        .collect()
}

/// The process's peak resident set (`VmHWM` of /proc/self/status), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

/// Restarts the peak resident set (`VmHWM`) from the current one (Linux: `5` to
/// /proc/self/clear_refs), so a later [`peak_rss_bytes`] covers only what came after; false where
/// the kernel does not allow it (the peak then still counts from the start).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's current resident set (`VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

/// User plus system CPU time of this process so far, in seconds (`getrusage`, to the microsecond).
///
/// Why not `/proc/self/stat`: it counts in ticks of 10 ms, so over a run of a few milliseconds (the
/// embedded model decodes a step in under one) a single tick made "2.9 cores busy" on two cores.
pub fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage only writes the struct it is given, which is plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer to an rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return None;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(secs(ru.ru_utime) + secs(ru.ru_stime))
    }
    #[cfg(not(unix))]
    None
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Read bandwidth in GB/s (10⁹ bytes): the best of several timed passes of `threads` threads summing
/// disjoint parts of a `mib`-MiB buffer (choose it well above the last-level cache), each pass with
/// each of the readers this CPU has. The decode kernels prefetch ahead of their loads, and a plain
/// summing loop without prefetch read up to a quarter slower than they did: a bound below what a
/// kernel reaches is no bound, so the prefetching reader is measured too and the faster one counts.
pub fn read_bandwidth_gb_s(mib: usize, threads: usize) -> f64 {
    read_bandwidth(mib, threads).best()
}

/// Each reader's best pass of [`read_bandwidth_gb_s`], and its median pass, in GB/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReadBandwidth {
    /// The plain summing loop.
    pub plain: f64,
    /// The reader that prefetches as the decode kernels do.
    pub streaming: f64,
    /// The plain loop's median pass.
    pub plain_median: f64,
    /// The streaming reader's median pass.
    pub streaming_median: f64,
}

impl ReadBandwidth {
    /// The faster reader's: the bound.
    pub fn best(&self) -> f64 {
        self.plain.max(self.streaming)
    }

    /// The median pass of the reader whose best is [`Self::best`].
    pub fn median(&self) -> f64 {
        if self.streaming >= self.plain {
            self.streaming_median
        } else {
            self.plain_median
        }
    }

    /// Each reader's better readings of `self` and `other` (the higher, the stricter).
    pub fn max(self, other: Self) -> Self {
        Self {
            plain: self.plain.max(other.plain),
            streaming: self.streaming.max(other.streaming),
            plain_median: self.plain_median.max(other.plain_median),
            streaming_median: self.streaming_median.max(other.streaming_median),
        }
    }
}

/// [`read_bandwidth_gb_s`] by reader.
pub fn read_bandwidth(mib: usize, threads: usize) -> ReadBandwidth {
    use rayon::prelude::*;
    let n = mib * (1 << 20) / 8;
    let buf: Vec<u64> = (0..n as u64).collect();
    let threads = threads.max(1);
    let chunk = n.div_ceil(threads);
    // Each reader's pass times, alternating readers so both see the same moments of the host.
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for pass in 0..12 {
        let prefetching = pass % 2 == 1;
        let t = Instant::now();
        let sum: u64 =
            buf.par_chunks(chunk).map(|c| if prefetching { sum_u64_prefetching(c) } else { sum_u64(c) }).sum();
        let dt = t.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        times[pass % 2].push(dt);
    }
    let gb_s = |dt: f64| (n * 8) as f64 / dt / 1e9;
    let [plain, streaming] = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        (gb_s(t[0]), gb_s(t[t.len() / 2]))
    });
    ReadBandwidth { plain: plain.0, streaming: streaming.0, plain_median: plain.1, streaming_median: streaming.1 }
}

/// The sum of `xs` read as the decode kernels read their weights: on AVX-512 one stream with a
/// software prefetch per 64-byte line a few KiB ahead; on AVX2 four streams, each running through
/// 16 KiB of consecutive memory and hinted where it reads next (the f32 kernels' pattern: on Zen 3
/// the one-row f32 decode had read up to a fifth faster than the plain reader, so the bound was no
/// bound there).
fn sum_u64_prefetching(xs: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let f = crate::model::cpu::features();
        if f.avx512 {
            // SAFETY: avx512f was detected.
            return unsafe { sum_u64_avx512_prefetch(xs) };
        }
        if f.avx2 {
            // SAFETY: avx2 was detected.
            return unsafe { sum_u64_avx2_streams(xs) };
        }
    }
    sum_u64(xs)
}

/// `u64`s per 4 KiB row of [`sum_u64_avx2_streams`] (an f32 weight row of 1024 values).
const ROW: usize = 512;
/// Rows apart the four streams read: each runs through the decode kernels' stream run.
const RUN: usize = crate::model::gemv::STREAM_RUN_BYTES / (ROW * 8);

/// The sum of `xs` as rows of 4 KiB in runs of `4·RUN` rows: phase `p` of a run reads rows
/// `p, p + RUN, p + 2·RUN, p + 3·RUN` side by side (four streams), hinting each row's lines one row
/// on in its stream (the next run's first rows after the last phase). The rest is summed plainly.
///
/// # Safety
/// The CPU must support avx2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_u64_avx2_streams(xs: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let run = 4 * RUN * ROW;
    let runs = xs.len() / run;
    let p0 = xs.as_ptr();
    let mut acc = [_mm256_setzero_si256(); 4];
    for j in 0..runs {
        for p in 0..RUN {
            let ahead = if p + 1 < RUN { ROW } else { (4 * RUN - RUN + 1) * ROW };
            let rows: [*const u64; 4] = std::array::from_fn(|c| p0.add(j * run + (p + RUN * c) * ROW));
            for i in (0..ROW).step_by(8) {
                for (a, &r) in acc.iter_mut().zip(&rows) {
                    // A hint only, possibly past the slice: wrapping_add, as `add` out of bounds is UB.
                    _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(i + ahead) as *const i8);
                    let v = _mm256_add_epi64(
                        _mm256_loadu_si256(r.add(i) as *const __m256i),
                        _mm256_loadu_si256(r.add(i + 4) as *const __m256i),
                    );
                    *a = _mm256_add_epi64(*a, v);
                }
            }
        }
    }
    let mut lanes = [0u64; 4];
    let total = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, total);
    lanes.iter().fold(sum_u64(&xs[runs * run..]), |a, &b| a.wrapping_add(b))
}

/// # Safety
/// The CPU must support avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_u64_avx512_prefetch(xs: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    /// How far ahead to prefetch, in u64s (4 KiB, the decode kernels' distance for f16 rows).
    const AHEAD: usize = 512;
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut it = xs.chunks_exact(32);
    let p0 = xs.as_ptr();
    let mut at = 0;
    for c in &mut it {
        let p = c.as_ptr();
        for (i, a) in acc.iter_mut().enumerate() {
            // A hint only, possibly past the slice: wrapping_add, as `add` out of bounds is UB.
            _mm_prefetch::<_MM_HINT_T0>(p0.wrapping_add(at + AHEAD + 8 * i) as *const i8);
            *a = _mm512_add_epi64(*a, _mm512_loadu_si512(p.add(8 * i) as *const _));
        }
        at += 32;
    }
    let total = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
    let mut lanes = [0u64; 8];
    _mm512_storeu_si512(lanes.as_mut_ptr() as *mut _, total);
    lanes.iter().fold(sum_u64_portable(it.remainder()), |a, &b| a.wrapping_add(b))
}

/// The sum of `xs`, bound by memory loads: AVX2 with four accumulators where the CPU has it (an
/// auto-vectorised loop turned out compute-bound under `-C target-cpu=native`).
fn sum_u64(xs: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if crate::model::cpu::features().avx2 {
        // SAFETY: avx2 was detected.
        return unsafe { sum_u64_avx2(xs) };
    }
    sum_u64_portable(xs)
}

/// # Safety
/// The CPU must support avx2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_u64_avx2(xs: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut it = xs.chunks_exact(16);
    for c in &mut it {
        let p = c.as_ptr() as *const __m256i;
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_add_epi64(*a, _mm256_loadu_si256(p.add(i)));
        }
    }
    let mut lanes = [0u64; 4];
    let total = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, total);
    lanes.iter().fold(sum_u64_portable(it.remainder()), |a, &b| a.wrapping_add(b))
}

/// Eight independent accumulators so the loop is bound by loads, not by one add chain.
fn sum_u64_portable(xs: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(c[i]);
        }
    }
    let tail: u64 = it.remainder().iter().fold(0u64, |a, &b| a.wrapping_add(b));
    acc.iter().fold(tail, |a, &b| a.wrapping_add(b))
}

/// The dtype a `--dtype` flag names, for the report.
pub fn dtype_label(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_random_model_decodes_batched_and_counts_bytes() {
        let cfg = Config::tiny(512);
        let mut m = random_model(&cfg, &LoadOptions::default()).unwrap();
        // f32: 512×64 tied head plus per layer 12·64² weights, biases and norms.
        assert!(m.weight_bytes > 4 * (512 * 64 + 2 * 12 * 64 * 64));
        assert_eq!(m.decode_bytes_per_step, m.weight_bytes);
        let prompt = synthetic_prompt(20, cfg.vocab_size);
        assert!(prompt.iter().all(|&t| (5..512).contains(&t)));
        let run = run_decode(m.model.as_mut(), &prompt, 3, 4).unwrap();
        assert_eq!(run.paths, 4);
        assert!(run.decode_tok_s > 0.0);
        let q = random_model(
            &cfg,
            &LoadOptions { quantize: Some(crate::model::quant::QuantKind::Q8_0), ..Default::default() },
        )
        .unwrap();
        assert!(q.weight_bytes * 3 < m.weight_bytes, "q8_0 is about a quarter of f32");
    }

    #[test]
    fn memory_and_bandwidth_are_measured() {
        assert!(peak_rss_bytes().unwrap() >= rss_bytes().unwrap() / 2);
        let bw = read_bandwidth(8, 1);
        assert!(bw.plain > 0.1 && bw.streaming > 0.1, "{bw:?}");
        // A median pass is no faster than the best one.
        assert!(0.0 < bw.plain_median && bw.plain_median <= bw.plain, "{bw:?}");
        assert!(0.0 < bw.streaming_median && bw.streaming_median <= bw.streaming, "{bw:?}");
        assert_eq!(bw.best(), bw.plain.max(bw.streaming));
        let other = ReadBandwidth {
            plain: bw.plain * 2.0,
            streaming: bw.streaming / 2.0,
            plain_median: bw.plain_median / 2.0,
            streaming_median: bw.streaming_median * 2.0,
        };
        let both = bw.max(other);
        assert_eq!(
            both,
            ReadBandwidth {
                plain: bw.plain * 2.0,
                streaming: bw.streaming,
                plain_median: bw.plain_median,
                streaming_median: bw.streaming_median * 2.0
            }
        );
        // The median reported is the faster reader's.
        let plain_faster = ReadBandwidth { plain: 30.0, streaming: 20.0, plain_median: 25.0, streaming_median: 19.0 };
        assert_eq!((plain_faster.best(), plain_faster.median()), (30.0, 25.0));
        let streaming_faster = ReadBandwidth { streaming: 31.0, streaming_median: 27.0, ..plain_faster };
        assert_eq!((streaming_faster.best(), streaming_faster.median()), (31.0, 27.0));
        assert_eq!(sum_u64(&(0..21).collect::<Vec<u64>>()), 210);
        // Short slices, and one past a whole run of the AVX2 streams (16 rows of 512) with a tail.
        for n in [0, 31, 32, 33, 1000, 2 * 4 * RUN * ROW + 77] {
            let xs: Vec<u64> = (0..n as u64).map(|i| i * 2_654_435_761 % 1_000_003).collect();
            assert_eq!(sum_u64_prefetching(&xs), xs.iter().sum::<u64>(), "{n} values");
        }
    }
}
