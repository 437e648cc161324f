//! Cephes' `expf` constants: `eˣ = 2ⁿ · p(r)` with `n = round(x·log₂e)` and `r = x − n·ln 2` in
//! [−½ ln 2, ½ ln 2]. One table for the scalar (`gelu`), AVX2 and AVX-512 (`attention`) versions,
//! so the three compute the same function.

/// ln 2 in two parts, `r = x − n·LN2_HI + n·LN2_LO`: `n·LN2_HI` is exact in f32 for the `n` that
/// occur, so `r` keeps its low bits.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = 2.121_944_4e-4;

/// The coefficients of `p`, highest degree first (Horner), before the final `p·r² + r + 1`.
pub(crate) const POLY: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
