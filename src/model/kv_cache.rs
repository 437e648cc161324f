//! A per-layer key/value cache that grows in place: appending writes into spare capacity with
//! `slice_set` instead of concatenating a new tensor every step.

use candle_core::{Result, Tensor};

/// Keys and values of one attention layer, laid out `b, h, capacity, d`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
}

/// Capacity grows in steps of this many positions, so a decode step rarely reallocates.
const GROW: usize = 256;

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Appends `k` and `v` (`b, h, s, d`) and returns the cached keys and values so far.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, s, d) = k.dims4()?;
        let need = self.len + s;
        let cap = self.k.as_ref().map(|t| t.dim(2)).transpose()?.unwrap_or(0);
        if need > cap {
            let new_cap = need.next_multiple_of(GROW);
            let nk = Tensor::zeros((b, h, new_cap, d), k.dtype(), k.device())?;
            let nv = Tensor::zeros((b, h, new_cap, d), v.dtype(), v.device())?;
            if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
                nk.slice_set(&ok.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&ov.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
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
        Ok((ck.narrow(2, 0, self.len)?, cv.narrow(2, 0, self.len)?))
    }

    /// Rebuilds the cache with the rows picked by `rows` (indices into the batch, repeats allowed):
    /// used to fork one prefilled prompt into several paths and to drop finished paths.
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

    #[test]
    fn append_across_growth_keeps_every_position() {
        let dev = Device::Cpu;
        let mut c = KvCache::default();
        let mut all = Vec::new();
        for step in 0..(GROW + 5) {
            let k = Tensor::full(step as f32, (2, 1, 1, 3), &dev).unwrap();
            let (ck, cv) = c.append(&k, &k).unwrap();
            all.push(step as f32);
            assert_eq!(ck.dims4().unwrap(), (2, 1, step + 1, 3));
            assert_eq!(cv.dims4().unwrap(), (2, 1, step + 1, 3));
        }
        let (ck, _) = c.append(&Tensor::zeros((2, 1, 1, 3), DType::F32, &dev).unwrap(), &Tensor::zeros((2, 1, 1, 3), DType::F32, &dev).unwrap()).unwrap();
        let got: Vec<f32> = ck.get(1).unwrap().get(0).unwrap().narrow(0, 0, all.len()).unwrap().get_on_dim(1, 0).unwrap().to_vec1().unwrap();
        assert_eq!(got, all);
    }

    #[test]
    fn select_rows_forks_and_drops() {
        let dev = Device::Cpu;
        let mut c = KvCache::default();
        let k = Tensor::new(&[[[[1f32]]], [[[2f32]]]], &dev).unwrap(); // b=2, h=1, s=1, d=1
        c.append(&k, &k).unwrap();
        c.select_rows(&[1, 1, 0]).unwrap();
        let (ck, _) = c.append(&Tensor::zeros((3, 1, 1, 1), DType::F32, &dev).unwrap(), &Tensor::zeros((3, 1, 1, 1), DType::F32, &dev).unwrap()).unwrap();
        let first: Vec<f32> = ck.narrow(2, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(first, vec![2.0, 2.0, 1.0]);
    }
}
