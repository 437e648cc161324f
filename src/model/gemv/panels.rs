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
            Self::place(&mut data, k32, j, row, <[f16]>::copy_from_slice);
        }
        Self { data, n, k }
    }

    /// The panels of an `n × k` matrix read a block of rows at a time by `read(r0, rows)` (rows
    /// `r0..r0 + rows`, row-major f32), straight into their place: the word embeddings (250880 rows
    /// at bloom-560m) never exist whole as rows beside their panels. The values are rounded to f16
    /// as a load in f16 rounds them (to nearest), so they are the bits that load would hold.
    pub fn from_row_blocks<E>(
        n: usize,
        k: usize,
        mut read: impl FnMut(usize, usize) -> Result<Vec<f32>, E>,
        wrong_length: impl Fn(usize) -> E,
    ) -> Result<Self, E> {
        use half::slice::HalfFloatSliceExt;
        use rayon::prelude::*;
        // Rows per read: whole panels, a few MiB of f32 at a time.
        const BLOCK: usize = ROWS * 256;
        let k32 = k.next_multiple_of(LINE);
        let mut data = crate::model::huge_arena::filled_vec(n.div_ceil(ROWS) * ROWS * k32, f16::ZERO);
        for r0 in (0..n).step_by(BLOCK) {
            let rows = BLOCK.min(n - r0);
            let v = read(r0, rows)?;
            if v.len() != rows * k {
                return Err(wrong_length(r0));
            }
            // Panel by panel over the pool (r0 is a whole number of panels in).
            let panel = ROWS * k32;
            let dst = &mut data[r0 / ROWS * panel..(r0 + rows).div_ceil(ROWS) * panel];
            dst.par_chunks_mut(panel).enumerate().for_each(|(g, dst)| {
                for (c, row) in v.chunks_exact(k).skip(g * ROWS).take(ROWS).enumerate() {
                    Self::place(dst, k32, c, row, <[f16]>::convert_from_f32_slice);
                }
            });
        }
        Ok(Self { data, n, k })
    }

    /// Rows `ids` widened to f32, one after another (an embedding lookup); `None` if an id is not
    /// a row.
    pub(crate) fn lookup(&self, ids: &[u32]) -> Option<Vec<f32>> {
        let mut out = vec![0f32; ids.len() * self.k];
        for (&id, dst) in ids.iter().zip(out.chunks_exact_mut(self.k.max(1))) {
            if id as usize >= self.n {
                return None;
            }
            self.widen(id as usize, 0, dst);
        }
        Some(out)
    }

    /// The same panels moved to the weights' huge-page arena (`huge_arena`). Made apart from
    /// [`Self::from_rows`] so that a loader can free the rows in between: the arena is bumped, and
    /// rows freed below their panels would pin their bytes until the whole mapping goes.
    pub fn into_arena(self) -> Self {
        let mut data = crate::model::huge_arena::weight_capacity(self.data.len());
        data.extend_from_slice(&self.data);
        Self { data, ..self }
    }

    /// Row `j` of panels starting at `data[0]` set from `row` line by line, by `put` (a copy, or a
    /// rounding from f32).
    fn place<T>(data: &mut [f16], k32: usize, j: usize, row: &[T], put: impl Fn(&mut [f16], &[T])) {
        for (l, line) in row.chunks(LINE).enumerate() {
            let at = Self::offset(k32, j, l * LINE);
            put(&mut data[at..at + line.len()], line);
        }
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
    fn panels_read_by_blocks_of_rows_are_the_panels_of_the_rows() {
        for (n, k) in [(1, 40), (7, 64), (3 * 1024 + 5, 33)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 61) as f32 - 30.0) / 7.0).collect();
            let whole = F16Panels::from_rows(&w.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(), k);
            let mut reads = Vec::new();
            let read = |r0: usize, rows: usize| -> Result<Vec<f32>, String> {
                reads.push((r0, rows));
                Ok(w[r0 * k..(r0 + rows) * k].to_vec())
            };
            let blocks = F16Panels::from_row_blocks(n, k, read, |r0| format!("rows from {r0}")).unwrap();
            assert_eq!(blocks.values(), whole.values(), "{n} x {k}");
            assert_eq!(reads.iter().map(|r| r.1).sum::<usize>(), n);
            // A lookup is the rows asked for, in their order; an id past the rows is refused.
            let got = blocks.lookup(&[(n - 1) as u32, 0]).unwrap();
            let want: Vec<f32> = [n - 1, 0]
                .iter()
                .flat_map(|&j| w[j * k..(j + 1) * k].iter().map(|&x| f16::from_f32(x).to_f32()))
                .collect();
            assert_eq!(got, want);
            assert_eq!(blocks.lookup(&[n as u32]), None);
        }
        // A block of the wrong length is the caller's error, not a panic.
        let short = F16Panels::from_row_blocks(4, 8, |_, _| Ok::<_, String>(vec![0.0; 3]), |r0| format!("rows {r0}"));
        assert_eq!(short.unwrap_err(), "rows 0");
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
