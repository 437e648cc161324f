//! A per-layer key/value cache in two parts: the prompt's keys and values, computed once by the
//! prefill and shared by every path (one copy however many paths fork from it, so attention reads
//! it once per step for all of them), and each path's own continuation, which grows in place with
//! `slice_set` into spare capacity instead of concatenating a new tensor every step.

use candle_core::{Result, Tensor};

/// Keys and values of one attention layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// The shared prompt: `1, h, L, d` each.
    prefix: Option<(Tensor, Tensor)>,
    /// Per-row continuations: `b, h, capacity, d` each.
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// Positions used in `k`/`v`.
    len: usize,
}

/// Capacity of the per-row part grows in steps of this many positions, so a step rarely reallocates.
const GROW: usize = 64;

impl KvCache {
    /// Positions cached (shared prompt plus continuation).
    pub fn len(&self) -> usize {
        self.prefix_len() + self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    fn prefix_len(&self) -> usize {
        self.prefix.as_ref().map(|(k, _)| k.dims()[2]).unwrap_or(0)
    }

    /// The shared prompt's keys and values (`1, h, L, d`), if any.
    pub fn prefix(&self) -> Option<(&Tensor, &Tensor)> {
        self.prefix.as_ref().map(|(k, v)| (k, v))
    }

    /// The rows' own keys and values so far (`b, h, S, d`), if any.
    pub fn rows(&self) -> Result<Option<(Tensor, Tensor)>> {
        match (&self.k, &self.v) {
            (Some(k), Some(v)) if self.len > 0 => Ok(Some((k.narrow(2, 0, self.len)?, v.narrow(2, 0, self.len)?))),
            _ => Ok(None),
        }
    }

    /// Appends `k` and `v` (`b, h, s, d`). A single-row run of several positions before any
    /// continuation exists (the prompt's prefill) becomes the shared prefix; everything else goes
    /// to the rows' own part.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let (b, h, s, d) = k.dims4()?;
        if b == 1 && s > 1 && self.k.is_none() {
            self.prefix = Some(match self.prefix.take() {
                None => (k.contiguous()?, v.contiguous()?),
                Some((pk, pv)) => (Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?),
            });
            return Ok(());
        }
        let need = self.len + s;
        let cap = self.k.as_ref().map(|t| t.dim(2)).transpose()?.unwrap_or(0);
        let rows = self.k.as_ref().map(|t| t.dim(0)).transpose()?.unwrap_or(b);
        if rows != b {
            candle_core::bail!("kv cache holds {rows} rows, got {b}");
        }
        if need > cap {
            let new_cap = need.next_multiple_of(GROW);
            let nk = Tensor::zeros((b, h, new_cap, d), k.dtype(), k.device())?;
            let nv = Tensor::zeros((b, h, new_cap, d), v.dtype(), v.device())?;
            if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
                if self.len > 0 {
                    nk.slice_set(&ok.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    nv.slice_set(&ov.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
            }
            self.k = Some(nk);
            self.v = Some(nv);
        }
        let (ck, cv) = match (&self.k, &self.v) {
            (Some(ck), Some(cv)) => (ck, cv),
            _ => candle_core::bail!("kv cache not allocated"),
        };
        ck.slice_set(&k.contiguous()?, 2, self.len)?;
        cv.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = need;
        Ok(())
    }

    /// Keeps the rows picked by `rows` (indices into the batch, repeats allowed): forks one prefilled
    /// prompt into several paths and drops finished paths. The shared prefix is untouched.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        if let (Some(k), Some(v)) = (&self.k, &self.v) {
            let idx = Tensor::new(rows, k.device())?;
            self.k = Some(k.index_select(&idx, 0)?.contiguous()?);
            self.v = Some(v.index_select(&idx, 0)?.contiguous()?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn row_values(c: &KvCache, row: usize) -> Vec<f32> {
        let (k, _) = c.rows().unwrap().unwrap();
        k.get(row).unwrap().get(0).unwrap().get_on_dim(1, 0).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn prompt_becomes_the_shared_prefix_and_steps_grow_in_place() {
        let dev = Device::Cpu;
        let mut c = KvCache::default();
        let p = Tensor::arange(0f32, 5., &dev).unwrap().reshape((1, 1, 5, 1)).unwrap();
        c.append(&p, &p).unwrap();
        assert_eq!(c.len(), 5);
        assert!(c.rows().unwrap().is_none());
        let mut all = Vec::new();
        for step in 0..(GROW + 5) {
            let k = Tensor::full(step as f32, (1, 1, 1, 1), &dev).unwrap();
            c.append(&k, &k).unwrap();
            all.push(step as f32);
            assert_eq!(c.len(), 5 + step + 1);
        }
        assert_eq!(row_values(&c, 0), all);
        let (pk, _) = c.prefix().unwrap();
        assert_eq!(pk.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0., 1., 2., 3., 4.]);
    }

    #[test]
    fn select_rows_forks_and_drops_rows_but_keeps_the_prefix() {
        let dev = Device::Cpu;
        let mut c = KvCache::default();
        let p = Tensor::zeros((1, 1, 3, 1), DType::F32, &dev).unwrap();
        c.append(&p, &p).unwrap();
        c.select_rows(&[0, 0, 0]).unwrap(); // fork before any continuation: nothing to copy
        let k = Tensor::new(&[[[[1f32]]], [[[2f32]]], [[[3f32]]]], &dev).unwrap(); // b=3
        c.append(&k, &k).unwrap();
        c.select_rows(&[2, 0]).unwrap();
        assert_eq!(row_values(&c, 0), vec![3.0]);
        assert_eq!(row_values(&c, 1), vec![1.0]);
        assert_eq!(c.len(), 4);
        assert!(c.append(&k, &k).is_err(), "3 rows into a 2-row cache");
    }
}
