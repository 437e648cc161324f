//! The AVX2+FMA register tile of the prefill GEMM, on the same packed panels as the AVX-512 one
//! (`MR = 14` tokens × `NR = 32` weight rows), for CPUs without AVX-512 (AMD Zen 2/3, older Intel).
//!
//! With 16 eight-lane registers the 14 × 32 tile runs as micro-tiles of up to 5 tokens × 16 outputs
//! (10 accumulators, two weight loads and five broadcasts per 10 fused multiply-adds), two strips of
//! 16 outputs by tokens 0–4, 5–9 and 10–13: each micro-tile has 8 or more independent sums, enough
//! to keep both FMA pipes busy through their latency (6 + 6 + 2 left the last two tokens' four
//! sums waiting on each other). (Strips of 14 × 8 need 16 registers for the
//! accumulators, the weights and the broadcast: the compiler spilled one accumulator through the
//! stack every step, and the GEMM ran at 80 GFLOP/s on two Zen 3 cores.) Each output is the same sum
//! in the same order as the AVX-512 tile's (`p` ascending, one fused chain), so the packing and
//! blocking above it are shared unchanged.

use std::arch::x86_64::*;

use super::{Tile, MR, NR};

/// The tile `t` (see [`Tile`]) on AVX2.
///
/// # Safety
/// The CPU must support avx2 and fma; `t` must be valid.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile(t: &Tile) {
    const { assert!(NR == 32 && MR == 14) };
    for c0 in [0, 16] {
        if c0 >= t.cols {
            break;
        }
        // A strip of up to 16 outputs: the tile's columns from `c0`, a tile of its own whose packed
        // weight columns are `NR` apart.
        let strip = Strip(Tile {
            b: t.b.add(c0),
            c: t.c.add(c0),
            cols: (t.cols - c0).min(16),
            bias: t.bias.map(|bv| &bv[c0..]),
            ..*t
        });
        strip.run::<5>(0);
        if t.rows > 5 {
            strip.run::<5>(5);
        }
        if t.rows > 10 {
            strip.run::<4>(10);
        }
    }
}

/// Up to 16 of a tile's outputs (`cols ≤ 16`), `b` and `c` at the strip's first column.
struct Strip<'a>(Tile<'a>);

impl Strip<'_> {
    /// Tokens `r0..r0 + R` of the strip; those at or past `rows` are computed but not stored.
    ///
    /// # Safety
    /// As [`tile`], for the strip; `r0 + R ≤ MR`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const R: usize>(&self, r0: usize) {
        let t = &self.0;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut ap = t.a.add(r0);
        let mut bp = t.b;
        for _ in 0..t.kc {
            // SAFETY (all loads): p < kc, within the packed panels the caller guarantees.
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r));
                acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
                acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        let mut start = [0f32; 16];
        if let Some(bv) = t.bias {
            start[..t.cols].copy_from_slice(&bv[..t.cols]);
        }
        for (r, acc_r) in acc.iter().enumerate().take(t.rows.saturating_sub(r0)) {
            let o = t.c.add((r0 + r) * t.ldc);
            if t.cols == 16 {
                for (h, v) in acc_r.iter().enumerate() {
                    let base = if t.accumulate {
                        _mm256_loadu_ps(o.add(8 * h))
                    } else {
                        _mm256_loadu_ps(start.as_ptr().add(8 * h))
                    };
                    _mm256_storeu_ps(o.add(8 * h), _mm256_add_ps(base, *v));
                }
            } else {
                // The panel's ragged edge, lane by lane: the padding never reaches memory.
                let mut lanes = [0f32; 16];
                _mm256_storeu_ps(lanes.as_mut_ptr(), acc_r[0]);
                _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc_r[1]);
                for (j, v) in lanes.iter().enumerate().take(t.cols) {
                    let base = if t.accumulate { *o.add(j) } else { start[j] };
                    *o.add(j) = base + v;
                }
            }
        }
    }
}

/// Transposes an 8 × 8 block: row `i` of `src` (at `src + i·lds`) becomes column `i` of `dst` (row
/// `j` of `dst` at `dst + j·ldd`), of which the first `width ≤ 8` lanes are stored.
///
/// # Safety
/// The CPU must support avx2; `src + i·lds` has 8 readable values for each `i < 8`, and `dst + j·ldd`
/// has `width` writable values for each `j < 8`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn transpose8(src: *const f32, lds: usize, dst: *mut f32, ldd: usize, width: usize) {
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * lds)));
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (x, y) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(x, y)
        } else {
            _mm256_unpackhi_ps(x, y)
        }
    });
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let g = 4 * (i / 4);
        match i % 4 {
            0 => _mm256_shuffle_ps::<0x44>(t[g], t[g + 2]),
            1 => _mm256_shuffle_ps::<0xEE>(t[g], t[g + 2]),
            2 => _mm256_shuffle_ps::<0x44>(t[g + 1], t[g + 3]),
            _ => _mm256_shuffle_ps::<0xEE>(t[g + 1], t[g + 3]),
        }
    });
    let mut out = [0f32; 8];
    for j in 0..8 {
        let v = if j < 4 {
            _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[j - 4], u[j])
        };
        if width == 8 {
            _mm256_storeu_ps(dst.add(j * ldd), v);
        } else {
            _mm256_storeu_ps(out.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(out.as_ptr(), dst.add(j * ldd), width);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avx2() -> bool {
        let f = crate::model::cpu::features();
        if !f.avx2 {
            eprintln!("no AVX2 here: the kernel is not used");
        }
        f.avx2
    }

    #[test]
    fn the_micro_tiles_compute_the_tile_in_order_with_ragged_edges_bias_and_accumulation() {
        if !avx2() {
            return;
        }
        let kc = 37;
        let a: Vec<f32> = (0..kc * MR).map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0).collect();
        let b: Vec<f32> = (0..kc * NR).map(|i| ((i * 5 % 17) as f32 - 8.0) / 4.0).collect();
        let bias: Vec<f32> = (0..NR).map(|j| j as f32 - 5.5).collect();
        for (rows, cols) in [(MR, NR), (1, 1), (5, 13), (MR, 8), (3, 31), (MR, 17), (7, 16), (13, 32), (12, 20)] {
            for (with_bias, accumulate) in [(false, false), (true, false), (false, true)] {
                let ldc = NR + 3;
                let c0: Vec<f32> = (0..MR * ldc).map(|i| i as f32 * 0.5).collect();
                let mut c = c0.clone();
                // SAFETY: avx2 checked; a, b hold kc panels; c has MR rows of ldc ≥ cols values.
                unsafe {
                    tile(&Tile {
                        a: a.as_ptr(),
                        b: b.as_ptr(),
                        kc,
                        c: c.as_mut_ptr(),
                        ldc,
                        rows,
                        cols,
                        bias: with_bias.then_some(&bias[..]),
                        accumulate,
                    })
                };
                for r in 0..MR {
                    for j in 0..ldc {
                        let got = c[r * ldc + j];
                        if r >= rows || j >= cols {
                            assert_eq!(got, c0[r * ldc + j], "({r}, {j}) outside the tile was written");
                            continue;
                        }
                        // The same sum in the same order, each step a fused multiply-add.
                        let mut s = 0f32;
                        for p in 0..kc {
                            s = a[p * MR + r].mul_add(b[p * NR + j], s);
                        }
                        let start = if accumulate {
                            c0[r * ldc + j]
                        } else if with_bias {
                            bias[j]
                        } else {
                            0.0
                        };
                        assert_eq!(got, start + s, "({r}, {j}) of {rows}x{cols}");
                    }
                }
            }
        }
    }

    #[test]
    fn transpose8_moves_rows_to_columns() {
        if !avx2() {
            return;
        }
        let src: Vec<f32> = (0..8 * 11).map(|i| i as f32).collect();
        for width in [8, 6, 1] {
            let mut dst = vec![-1f32; 8 * 9];
            // SAFETY: avx2 checked; 8 rows of 11 ≥ 8 values; 8 rows of 9 ≥ width.
            unsafe { transpose8(src.as_ptr(), 11, dst.as_mut_ptr(), 9, width) };
            for j in 0..8 {
                for i in 0..9 {
                    let want = if i < width { src[i * 11 + j] } else { -1.0 };
                    assert_eq!(dst[j * 9 + i], want, "width {width}: dst ({j}, {i})");
                }
            }
        }
    }
}
