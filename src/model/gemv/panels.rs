//! An f16 weight matrix in panels of three rows interleaved by 64-byte lines, so that a thread's
//! share of a few-row product reads one sequential stream of memory.
//!
//! Why: the AVX-512 kernels take weight rows two or three at a time, and each row is a stream; on
//! the AMD EPYCs (Zen 4 and Zen 5) several streams read memory slower than one, whatever their
//! distance and hints (BENCHMARKS.md, Round 28). Interleaved, a group of rows is one stream: line
//! `l` of row `3g` is followed by line `l` of rows `3g + 1` and `3g + 2`, then line `l + 1` of row
//! `3g`. A kernel reads the rows' lines in the same order as from plain rows, so the sums, and the
//! bits of a decode, are the same in either layout. Three rows, not two: 8 activation rows against
//! 3 weight rows fill 24 of AVX-512's 32 registers with accumulators, the group f16 weights take
//! for more than 4 paths (`super::block512`).

use half::f16;

/// Values of one row in one line (64 bytes of f16).
pub(crate) const LINE: usize = 32;
/// Rows per panel.
pub(crate) const ROWS: usize = 3;

/// An `n × k` f16 matrix as panels: panel `g` holds rows `3g` to `3g + 2` (zeros past row `n`),
/// each padded to a whole number of lines, `k32 = k` rounded up to [`LINE`].
#[derive(Debug)]
pub struct F16Panels {
    data: Vec<f16>,
    n: usize,
    k: usize,
}

impl F16Panels {
    /// The panels of the row-major `w` (`n × k`), in an ordinary vector (see [`Self::into_arena`]).
    ///
    /// # Panics
    /// If `k` is 0 or does not divide `w.len()`.
    pub fn from_rows(w: &[f16], k: usize) -> Self {
        assert!(k > 0 && w.len().is_multiple_of(k), "panels: {} values are not rows of {k}", w.len());
        let n = w.len() / k;
        let k32 = k.next_multiple_of(LINE);
        let mut data = vec![f16::ZERO; n.div_ceil(ROWS) * ROWS * k32];
        for (j, row) in w.chunks_exact(k).enumerate() {
            for (l, line) in row.chunks(LINE).enumerate() {
                let at = Self::offset(k32, j, l * LINE);
                data[at..at + line.len()].copy_from_slice(line);
            }
        }
        Self { data, n, k }
    }

    /// The same panels moved to the weights' huge-page arena (`huge_arena`). Made apart from
    /// [`Self::from_rows`] so that a loader can free the rows in between: the arena is bumped, and
    /// rows freed below their panels would pin their bytes until the whole mapping goes.
    pub fn into_arena(self) -> Self {
        let mut data = crate::model::huge_arena::weight_capacity(self.data.len());
        data.extend_from_slice(&self.data);
        Self { data, ..self }
    }

    /// Where value `p` of row `j` lies, for rows padded to `k32` values.
    #[inline(always)]
    fn offset(k32: usize, j: usize, p: usize) -> usize {
        (j / ROWS) * ROWS * k32 + (p / LINE) * ROWS * LINE + (j % ROWS) * LINE + p % LINE
    }

    /// Rows (`n`).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Values per row (`k`).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Panels (`n / ROWS`, rounded up).
    pub fn panels(&self) -> usize {
        self.n.div_ceil(ROWS)
    }

    /// Values per padded row: the distance from a panel to the next is `ROWS` of these.
    pub(crate) fn padded_cols(&self) -> usize {
        self.k.next_multiple_of(LINE)
    }

    /// Bytes held, padding included: what a product streams.
    pub fn size_in_bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f16>()
    }

    /// The panels' values, panel after panel.
    pub(crate) fn values(&self) -> &[f16] {
        &self.data
    }

    /// Where panels `panels` lie (address, bytes): a thread's share.
    pub(crate) fn span(&self, panels: std::ops::Range<usize>) -> (usize, usize) {
        let panel = ROWS * self.padded_cols() * std::mem::size_of::<f16>();
        (self.data.as_ptr() as usize + panels.start * panel, panels.len() * panel)
    }

    /// Value `p` of row `j`.
    pub(crate) fn value_at(&self, j: usize, p: usize) -> &f16 {
        &self.data[Self::offset(self.padded_cols(), j, p)]
    }

    /// Values `p0..p0 + dst.len()` of row `j`, widened into `dst`.
    pub(crate) fn widen(&self, j: usize, p0: usize, dst: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let k32 = self.padded_cols();
        let mut p = p0;
        let mut rest = dst;
        while !rest.is_empty() {
            // The rest of this line of the row, or of the values asked for.
            let take = (LINE - p % LINE).min(rest.len());
            let at = Self::offset(k32, j, p);
            let (now, later) = rest.split_at_mut(take);
            self.data[at..at + take].convert_to_f32_slice(now);
            rest = later;
            p += take;
        }
    }

    /// The row-major matrix again (for paths without a kernel for panels).
    pub fn to_rows(&self) -> Vec<f16> {
        let k32 = self.padded_cols();
        let mut w = Vec::with_capacity(self.n * self.k);
        for j in 0..self.n {
            for p in (0..self.k).step_by(LINE) {
                let at = Self::offset(k32, j, p);
                w.extend_from_slice(&self.data[at..at + LINE.min(self.k - p)]);
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(n: usize, k: usize) -> Vec<f16> {
        (0..n * k).map(|i| f16::from_f32(((i * 7 % 61) as f32 - 30.0) / 8.0)).collect()
    }

    #[test]
    fn rows_interleave_by_lines_and_come_back_whole() {
        // Two rows of 40 values (row 2 missing): row 0's first line, row 1's, zeros, then each
        // row's last 8 values and padding.
        let w: Vec<f16> = (0..80).map(|i| f16::from_f32(i as f32 + 1.0)).collect();
        let p = F16Panels::from_rows(&w, 40);
        let v: Vec<f32> = p.values().iter().map(|h| h.to_f32()).collect();
        let run = |a: usize, b: usize| (a..b).map(|i| i as f32 + 1.0).collect::<Vec<_>>();
        assert_eq!((v.len(), p.panels()), (3 * 64, 1));
        assert_eq!(&v[..32], &run(0, 32)[..]);
        assert_eq!(&v[32..64], &run(40, 72)[..]);
        assert!(v[64..96].iter().all(|&x| x == 0.0));
        assert_eq!(&v[96..104], &run(32, 40)[..]);
        assert!(v[104..128].iter().all(|&x| x == 0.0));
        assert_eq!(&v[128..136], &run(72, 80)[..]);
        assert!(v[136..].iter().all(|&x| x == 0.0));
        // Odd row counts and widths that are not whole lines survive the round trip.
        for (n, k) in [(1, 1), (3, 32), (5, 33), (4, 100), (7, 1024)] {
            let w = matrix(n, k);
            let p = F16Panels::from_rows(&w, k);
            assert_eq!((p.rows(), p.cols()), (n, k));
            assert_eq!(p.to_rows(), w, "{n} x {k}");
        }
    }

    #[test]
    fn widening_any_piece_of_a_row_reads_that_row() {
        let (n, k) = (5, 100);
        let w = matrix(n, k);
        let p = F16Panels::from_rows(&w, k);
        for j in 0..n {
            for (p0, len) in [(0, 100), (0, 32), (10, 40), (31, 2), (64, 36), (99, 1)] {
                let mut got = vec![0f32; len];
                p.widen(j, p0, &mut got);
                let want: Vec<f32> = w[j * k + p0..j * k + p0 + len].iter().map(|h| h.to_f32()).collect();
                assert_eq!(got, want, "row {j}, {p0}..{}", p0 + len);
            }
        }
    }

    #[test]
    fn a_share_s_span_covers_its_panels() {
        let p = F16Panels::from_rows(&matrix(13, 40), 40);
        let panel = 3 * 64 * 2;
        let base = p.values().as_ptr() as usize;
        assert_eq!(p.panels(), 5);
        assert_eq!(p.span(0..2), (base, 2 * panel));
        assert_eq!(p.span(2..5), (base + 2 * panel, 3 * panel));
        assert_eq!(p.size_in_bytes(), 5 * panel);
    }
}
