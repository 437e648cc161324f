//! A per-layer key/value cache in two parts: the prompt's keys and values, computed once by the
//! prefill and shared by every path (one copy however many paths fork from it, so attention reads
//! it once per step for all of them), and each path's own continuation, which grows in place with
//! `slice_set` into spare capacity instead of concatenating a new tensor every step.
//!
//! The prompt itself is kept in parts, in position order: a template's keys and values from the
//! prefix cache, then the question's own. The attention kernels read part by part, so a question
//! after a cached template copies nothing (the concatenation it replaced copied the whole prompt,
//! 115 MB at bloom-560m's 584-token template, into fresh memory at every question switch).

use candle_core::{Result, Tensor};

/// Keys and values of one attention layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// The shared prompt in parts, in position order: `1, h, Lᵢ, d` each.
    prefix: Vec<(Tensor, Tensor)>,
    /// Per-row continuations: `b, h, capacity, d` each.
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// Positions used by each row of `k`/`v` (empty until the rows are allocated). All equal for
    /// the paths of one prompt; rows added from other prompts (a batch of questions sharing the
    /// prefix) start with their prompt's own tokens, so lengths then differ and attention masks
    /// each row's unused tail.
    lens: Vec<usize>,
    /// Positions of their own the rows are given room for when their part is allocated (the
    /// engine's hint: its requests' `max_new_tokens`), kept across `clear` and `set_prefix`.
    room: usize,
    /// Whether the prompt's keys and values go on huge pages (`huge_arena::kv_copy`): where the
    /// layer's weights are on them. Kept across `clear` and `set_prefix`.
    huge_pages: bool,
}

/// Capacity of the per-row part grows in steps of this many positions, so a step rarely reallocates.
const GROW: usize = 64;

/// The most room [`KvCache::set_room`] reserves: past it the rows grow as they go. (The room's
/// pages are touched only as rows fill them, but a 4096-token request with 8 paths would still ask
/// for gigabytes at once.)
const MAX_ROOM: usize = 1024;

/// Parts of a prompt kept apart at most; more (a branch of a branch of …) are joined, one copy.
const MAX_PARTS: usize = 8;

impl KvCache {
    /// Positions cached (shared prompt plus the longest continuation).
    pub fn len(&self) -> usize {
        self.prefix_len() + self.rows_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty cache whose prompt's keys and values go on huge pages when `huge_pages`: read at
    /// each step beside weights on huge pages, keys and values on 4 KiB pages took about a third
    /// longer, and the weights' products slowed too (BENCHMARKS.md, Round 23).
    pub fn new(huge_pages: bool) -> Self {
        Self { huge_pages, ..Self::default() }
    }

    pub fn clear(&mut self) {
        *self = Self { room: self.room, huge_pages: self.huge_pages, ..Self::default() };
    }

    /// Gives rows room for `positions` of their own (at most [`MAX_ROOM`]) whenever their part is
    /// allocated: a generation of that many tokens then never reallocates. Without it the part
    /// grew every [`GROW`] positions, each time zeroing and copying every row's keys and values
    /// (300 MB at 8 rows of bloom-560m, a step of 2x the others' time).
    pub fn set_room(&mut self, positions: usize) {
        self.room = positions.min(MAX_ROOM);
    }

    pub fn prefix_len(&self) -> usize {
        self.prefix.iter().map(|(k, _)| k.dims()[2]).sum()
    }

    /// The longest row's own positions.
    fn rows_len(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }

    /// Each row's own positions (empty before the rows exist).
    pub fn row_lens(&self) -> &[usize] {
        &self.lens
    }

    /// The shared prompt's keys and values in parts (`1, h, Lᵢ, d` each, in position order).
    pub fn prefix_parts(&self) -> &[(Tensor, Tensor)] {
        &self.prefix
    }

    /// Positions `start..start + n` of the shared prompt (`1, h, n, d`): a part itself where one
    /// part is exactly that, else a copy (so it never keeps a larger part's memory alive).
    pub fn prefix_range(&self, start: usize, n: usize) -> Result<Option<(Tensor, Tensor)>> {
        if n == 0 || start + n > self.prefix_len() {
            return Ok(None);
        }
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        let mut at = 0;
        for (k, v) in &self.prefix {
            let len = k.dim(2)?;
            let (a, b) = (start.max(at), (start + n).min(at + len));
            if a < b {
                if (a, b) == (at, at + len) && (a, b) == (start, start + n) {
                    return Ok(Some((k.clone(), v.clone())));
                }
                ks.push(k.narrow(2, a - at, b - a)?);
                vs.push(v.narrow(2, a - at, b - a)?);
            }
            at += len;
        }
        let join = |ts: &[Tensor]| if ts.len() == 1 { ts[0].force_contiguous() } else { Tensor::cat(ts, 2) };
        Ok(Some((join(&ks)?, join(&vs)?)))
    }

    /// The shared prompt's keys and values as one tensor each (`1, h, L, d`), if any: the one part
    /// itself, or the parts concatenated, for the general attention path.
    pub fn prefix(&self) -> Result<Option<(Tensor, Tensor)>> {
        self.prefix_range(0, self.prefix_len())
    }

    /// The rows' own keys and values so far (`b, h, S, d`, S the longest row), if any.
    pub fn rows(&self) -> Result<Option<(Tensor, Tensor)>> {
        let len = self.rows_len();
        match (&self.k, &self.v) {
            (Some(k), Some(v)) if len > 0 => Ok(Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?))),
            _ => Ok(None),
        }
    }

    /// The rows' own keys and values at full capacity (`b, h, capacity, d`, row `r` using its first
    /// `row_lens()[r]` positions), for kernels that index them directly; `None` before rows exist.
    pub fn rows_full(&self) -> Option<(&Tensor, &Tensor)> {
        match (&self.k, &self.v) {
            (Some(k), Some(v)) => Some((k, v)),
            _ => None,
        }
    }

    /// `b, 1, 1, L + S`: 0 where row r may attend, -inf on the positions past its own length.
    /// `None` while all rows are equally long (nothing to hide).
    pub fn row_mask(&self) -> Result<Option<Tensor>> {
        let (max, min) = (self.rows_len(), self.lens.iter().copied().min().unwrap_or(0));
        let Some(k) = self.k.as_ref().filter(|_| max != min) else {
            return Ok(None);
        };
        let l = self.prefix_len();
        let kv = l + max;
        let mask: Vec<f32> = self
            .lens
            .iter()
            .flat_map(|&n| (0..kv).map(move |j| if j < l + n { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        Tensor::from_vec(mask, (self.lens.len(), 1, 1, kv), k.device()).map(Some)
    }

    /// Replaces everything with a shared prefix in `parts` (`1, h, Lᵢ, d` each, in position order:
    /// a prompt's cached KV). Past [`MAX_PARTS`] they are joined into one.
    pub fn set_prefix(&mut self, parts: Vec<(Tensor, Tensor)>) -> Result<()> {
        *self = Self { prefix: parts, room: self.room, huge_pages: self.huge_pages, ..Self::default() };
        if self.prefix.len() > MAX_PARTS {
            let joined = self.prefix()?;
            self.prefix = joined.into_iter().collect();
        }
        Ok(())
    }

    /// Appends `k`, `v` (`1, h, s, d`) to the shared prefix as a part of its own (a prompt's tokens
    /// after a cached part).
    pub fn append_prefix(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        if self.k.is_some() {
            candle_core::bail!("kv cache: the prompt's prefix cannot grow once rows exist");
        }
        if k.dim(2)? > 0 {
            self.prefix.push((self.stored(k)?, self.stored(v)?));
        }
        Ok(())
    }

    /// `t` as the prefix keeps it: contiguous, and copied onto huge pages where asked for.
    fn stored(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.contiguous()?;
        if !self.huge_pages || t.dtype() != candle_core::DType::F32 {
            return Ok(t);
        }
        let copy = {
            let (storage, layout) = t.storage_and_layout();
            let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) = &*storage else { return Ok(t.clone()) };
            super::huge_arena::kv_copy(&v[layout.start_offset()..layout.start_offset() + t.elem_count()])
        };
        Tensor::from_vec(copy, t.dims(), t.device())
    }

    /// Positions per row to allocate for `need`, where the rows hold up to `held`: the room past
    /// what they hold (at least the next step's position), in whole steps of [`GROW`].
    fn capacity(&self, held: usize, need: usize) -> usize {
        need.max(held + self.room.max(1)).next_multiple_of(GROW)
    }

    /// Makes room for `need` positions per row, keeping what the rows hold.
    fn reserve(&mut self, b: usize, need: usize, like: &Tensor) -> Result<()> {
        let cap = self.k.as_ref().map(|t| t.dim(2)).transpose()?.unwrap_or(0);
        if need <= cap && self.k.is_some() {
            return Ok(());
        }
        let (_, h, _, d) = like.dims4()?;
        let new_cap = self.capacity(self.rows_len(), need);
        let nk = Tensor::zeros((b, h, new_cap, d), like.dtype(), like.device())?;
        let nv = Tensor::zeros((b, h, new_cap, d), like.dtype(), like.device())?;
        let used = self.rows_len();
        if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
            if used > 0 {
                nk.slice_set(&ok.narrow(2, 0, used)?.contiguous()?, 2, 0)?;
                nv.slice_set(&ov.narrow(2, 0, used)?.contiguous()?, 2, 0)?;
            }
        }
        self.k = Some(nk);
        self.v = Some(nv);
        Ok(())
    }

    /// Appends `k` and `v` (`b, h, s, d`), each row after its own last position. A single-row run
    /// of several positions before any continuation exists (the prompt's prefill) becomes the
    /// shared prefix; everything else goes to the rows' own part.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let (b, _h, s, _d) = k.dims4()?;
        if b == 1 && s > 1 && self.k.is_none() {
            return self.append_prefix(k, v);
        }
        if self.k.is_none() {
            self.lens = vec![0; b];
        }
        if self.lens.len() != b {
            candle_core::bail!("kv cache holds {} rows, got {b}", self.lens.len());
        }
        self.reserve(b, self.rows_len() + s, k)?;
        let (ck, cv) = match (&self.k, &self.v) {
            (Some(ck), Some(cv)) => (ck, cv),
            _ => candle_core::bail!("kv cache not allocated"),
        };
        let (k, v) = (k.contiguous()?, v.contiguous()?);
        if self.lens.iter().all(|&n| n == self.lens[0]) {
            ck.slice_set(&k, 2, self.lens[0])?;
            cv.slice_set(&v, 2, self.lens[0])?;
        } else {
            for (r, &n) in self.lens.iter().enumerate() {
                // A row of a contiguous `b, h, cap, d` tensor is itself contiguous: written in place.
                ck.narrow(0, r, 1)?.slice_set(&k.narrow(0, r, 1)?, 2, n)?;
                cv.narrow(0, r, 1)?.slice_set(&v.narrow(0, r, 1)?, 2, n)?;
            }
        }
        for n in self.lens.iter_mut() {
            *n += s;
        }
        Ok(())
    }

    /// Adds `n` rows at the end of the batch, each starting with `k`, `v` (`1, h, s, d`: a prompt's
    /// tokens after the shared prefix).
    pub fn add_rows(&mut self, k: &Tensor, v: &Tensor, n: usize) -> Result<()> {
        self.add_rows_many(&[(k, v, n)])
    }

    /// [`KvCache::add_rows`] for several prompts at once, in order: the batch is allocated and
    /// copied once, not once per prompt (a wave of 8 questions copied 36 rows' caches per layer).
    pub fn add_rows_many(&mut self, prompts: &[(&Tensor, &Tensor, usize)]) -> Result<()> {
        let Some(&(first, _, _)) = prompts.first() else { return Ok(()) };
        let (_, h, _, d) = first.dims4()?;
        let mut longest = self.rows_len();
        for (k, v, _) in prompts {
            let (one, kh, s, kd) = k.dims4()?;
            if one != 1 || (kh, kd) != (h, d) || v.dims4()? != (one, kh, s, kd) {
                candle_core::bail!("kv cache: new rows come from one sequence of {h} heads of {d}, got {:?}", k.dims());
            }
            longest = longest.max(s);
        }
        let old = self.lens.len();
        let added: usize = prompts.iter().map(|p| p.2).sum();
        let want = self.capacity(longest, longest);
        let cap = self.k.as_ref().map(|t| t.dim(2)).transpose()?.unwrap_or(0).max(want);
        let nk = Tensor::zeros((old + added, h, cap, d), first.dtype(), first.device())?;
        let nv = Tensor::zeros((old + added, h, cap, d), first.dtype(), first.device())?;
        // Rows of a contiguous `b, h, cap, d` tensor are contiguous: written in place.
        let used = self.rows_len();
        if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
            if old > 0 && used > 0 {
                nk.narrow(0, 0, old)?.slice_set(&ok.narrow(2, 0, used)?.contiguous()?, 2, 0)?;
                nv.narrow(0, 0, old)?.slice_set(&ov.narrow(2, 0, used)?.contiguous()?, 2, 0)?;
            }
        }
        let mut row = old;
        for (k, v, n) in prompts {
            let (k, v, s) = (k.contiguous()?, v.contiguous()?, k.dim(2)?);
            for _ in 0..*n {
                if s > 0 {
                    nk.narrow(0, row, 1)?.slice_set(&k, 2, 0)?;
                    nv.narrow(0, row, 1)?.slice_set(&v, 2, 0)?;
                }
                row += 1;
            }
            self.lens.extend(std::iter::repeat_n(s, *n));
        }
        self.k = Some(nk);
        self.v = Some(nv);
        Ok(())
    }

    /// Keeps the rows picked by `rows` (indices into the batch, repeats allowed): forks one prefilled
    /// prompt into several paths and drops finished paths. The shared prefix is untouched.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        if let (Some(k), Some(v)) = (&self.k, &self.v) {
            if rows.is_empty() {
                self.k = None;
                self.v = None;
                self.lens.clear();
                return Ok(());
            }
            let idx = Tensor::new(rows, k.device())?;
            // Only the positions in use are copied: the room past them (see `set_room`) is untouched
            // memory, and copying it would fill it.
            let used = self.rows_len();
            let pick = |t: &Tensor| -> Result<Tensor> {
                let (_, h, cap, d) = t.dims4()?;
                let out = Tensor::zeros((rows.len(), h, cap, d), t.dtype(), t.device())?;
                if used > 0 {
                    out.slice_set(&t.narrow(2, 0, used)?.contiguous()?.index_select(&idx, 0)?, 2, 0)?;
                }
                Ok(out)
            };
            self.k = Some(pick(k)?);
            self.v = Some(pick(v)?);
            self.lens = rows.iter().map(|&r| self.lens.get(r as usize).copied().unwrap_or(0)).collect();
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
        let (pk, _) = c.prefix().unwrap().unwrap();
        assert_eq!(pk.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0., 1., 2., 3., 4.]);
    }

    /// Whether every tensor of the prompt's parts lies in the keys and values' huge-page arena.
    fn prefix_on_huge_pages(c: &KvCache) -> bool {
        use crate::model::huge_arena::KV_ARENA;
        c.prefix_parts().iter().flat_map(|(k, v)| [k, v]).all(|t| {
            let (s, l) = t.storage_and_layout();
            match &*s {
                candle_core::Storage::Cpu(candle_core::CpuStorage::F32(x)) => {
                    KV_ARENA.owns(x[l.start_offset()..].as_ptr() as *const u8)
                }
                _ => false,
            }
        })
    }

    #[test]
    fn a_cache_asked_for_huge_pages_keeps_the_prompt_s_keys_and_values_there_unchanged() {
        let dev = Device::Cpu;
        // 1 MiB a tensor (4 heads, 1024 positions, 64 channels), laid out as the fused projection
        // leaves it (`1, s, h, d` seen as `1, h, s, d`): not contiguous.
        let kv = |base: f32| {
            let t = Tensor::arange(base, base + (4 * 1024 * 64) as f32, &dev).unwrap();
            t.reshape((1, 1024, 4, 64)).unwrap().transpose(1, 2).unwrap()
        };
        let (k, v) = (kv(0.), kv(1e6));
        assert!(!k.is_contiguous());
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut huge = KvCache::new(true);
        huge.append_prefix(&k, &v).unwrap();
        assert!(prefix_on_huge_pages(&huge));
        let (pk, pv) = huge.prefix().unwrap().unwrap();
        assert_eq!((values(&pk), values(&pv)), (values(&k), values(&v)));
        // The choice outlives clearing and a prefix from the prefix cache.
        huge.clear();
        huge.append_prefix(&k, &v).unwrap();
        assert!(prefix_on_huge_pages(&huge));
        let parts = huge.prefix_parts().to_vec();
        huge.set_prefix(parts).unwrap();
        huge.append_prefix(&v, &k).unwrap();
        assert!(prefix_on_huge_pages(&huge) && huge.prefix_parts().len() == 2);
        // A cache not asked for them keeps the same values in the heap.
        let mut plain = KvCache::new(false);
        plain.append_prefix(&k, &v).unwrap();
        assert!(!prefix_on_huge_pages(&plain));
        assert_eq!(values(&plain.prefix().unwrap().unwrap().0), values(&k));
    }

    /// The rows' part's storage, to tell a reallocation from growth in place.
    fn storage_id(c: &KvCache) -> Option<candle_core::TensorId> {
        c.rows_full().map(|(k, _)| k.id())
    }

    #[test]
    fn rows_given_room_take_it_without_reallocating_and_keep_it_across_clear() {
        let dev = Device::Cpu;
        let one = |x: f32| Tensor::full(x, (1, 1, 1, 1), &dev).unwrap();
        let room = 3 * GROW;
        for add in [false, true] {
            let mut c = KvCache::default();
            c.set_room(room);
            c.clear();
            let prompt = Tensor::new(&[-2f32, -1.], &dev).unwrap().reshape((1, 1, 2, 1)).unwrap();
            c.append(&prompt, &prompt).unwrap(); // the shared prefix
            let p = Tensor::arange(0f32, 5., &dev).unwrap().reshape((1, 1, 5, 1)).unwrap();
            // Rows of a prompt's own 5 tokens (a batch), or forked at the first step.
            let own = if add {
                c.add_rows_many(&[(&p, &p, 2)]).unwrap();
                5
            } else {
                0
            };
            let two = Tensor::full(7f32, (2, 1, 1, 1), &dev).unwrap();
            c.append(&two, &two).unwrap();
            let id = storage_id(&c);
            for _ in 1..room {
                c.append(&two, &two).unwrap();
            }
            assert_eq!(storage_id(&c), id, "add_rows {add}: reallocated within its room");
            assert_eq!(c.row_lens(), &[own + room, own + room]);
            // Past the room the part grows as before, keeping what the rows hold.
            for _ in 0..GROW {
                c.append(&two, &two).unwrap();
            }
            assert_ne!(storage_id(&c), id);
            let want: Vec<f32> = (0..own).map(|i| i as f32).chain(std::iter::repeat_n(7., room + GROW)).collect();
            assert_eq!(row_values(&c, 1), want);
        }
        // Without room, the first step's rows hold one step of growth.
        let mut c = KvCache::default();
        c.append(&one(0.), &one(0.)).unwrap();
        c.append(&one(1.), &one(1.)).unwrap();
        assert_eq!(c.rows_full().unwrap().0.dim(2).unwrap(), GROW);
        c.set_room(10 * MAX_ROOM);
        c.clear();
        c.append(&one(0.), &one(0.)).unwrap();
        c.append(&one(1.), &one(1.)).unwrap();
        assert_eq!(c.rows_full().unwrap().0.dim(2).unwrap(), MAX_ROOM, "room is capped");
    }

    #[test]
    fn a_prefix_in_parts_reads_as_the_whole_and_ranges_copy_only_across_parts() {
        let dev = Device::Cpu;
        // Two heads of one channel, so a range within a part is not contiguous in it.
        let t = |a: f32, n: usize| {
            let h0: Vec<f32> = (0..n).map(|i| a + i as f32).collect();
            let h1: Vec<f32> = h0.iter().map(|x| -x).collect();
            Tensor::new([h0, h1].concat(), &dev).unwrap().reshape((1, 2, n, 1)).unwrap()
        };
        let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut c = KvCache::default();
        c.set_prefix(vec![(t(0., 3), t(0., 3)), (t(3., 2), t(3., 2))]).unwrap();
        c.append_prefix(&t(5., 4), &t(5., 4)).unwrap();
        assert_eq!(c.prefix_parts().len(), 3);
        assert_eq!(c.prefix_len(), 9);
        let (k, _) = c.prefix().unwrap().unwrap();
        assert_eq!(flat(&k), flat(&t(0., 9)));
        // The last part exactly: the part itself, sharing its storage.
        let (own, _) = c.prefix_range(5, 4).unwrap().unwrap();
        assert!(own.id() == c.prefix_parts()[2].0.id() && flat(&own) == flat(&t(5., 4)));
        // Across parts, and within one: copies of just those positions.
        assert_eq!(flat(&c.prefix_range(2, 4).unwrap().unwrap().0), flat(&t(2., 4)));
        let (inner, _) = c.prefix_range(6, 2).unwrap().unwrap();
        assert!(inner.is_contiguous() && inner.dims() == [1, 2, 2, 1] && flat(&inner) == flat(&t(6., 2)));
        assert!(c.prefix_range(8, 2).unwrap().is_none());
        // Too many parts are joined.
        let many: Vec<(Tensor, Tensor)> = (0..MAX_PARTS + 1).map(|i| (t(i as f32, 1), t(i as f32, 1))).collect();
        c.set_prefix(many).unwrap();
        assert_eq!(c.prefix_parts().len(), 1);
        assert_eq!(flat(&c.prefix().unwrap().unwrap().0), flat(&t(0., MAX_PARTS + 1)));
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

    #[test]
    fn select_rows_keeps_each_rows_heads_and_channels_and_the_room() {
        let dev = Device::Cpu;
        // Two heads of two channels; prompts of 3 and 1 own positions, so lengths differ.
        let t = |base: f32, s: usize| {
            let v: Vec<f32> = (0..2 * s * 2).map(|i| base + i as f32).collect();
            Tensor::new(v, &dev).unwrap().reshape((1, 2, s, 2)).unwrap()
        };
        let mut c = KvCache::default();
        c.set_room(100);
        c.append_prefix(&t(-50., 2), &t(-50., 2)).unwrap();
        let (a, b) = (t(0., 3), t(100., 1));
        c.add_rows_many(&[(&a, &a, 1), (&b, &b, 1)]).unwrap();
        let cap = c.rows_full().unwrap().0.dim(2).unwrap();
        let row = |c: &KvCache, r: usize, n: usize| -> Vec<f32> {
            let (k, _) = c.rows_full().unwrap();
            k.get(r).unwrap().narrow(1, 0, n).unwrap().flatten_all().unwrap().to_vec1().unwrap()
        };
        let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        c.select_rows(&[1, 0, 1]).unwrap();
        assert_eq!(c.row_lens(), &[1, 3, 1]);
        assert_eq!(row(&c, 0, 1), flat(&b));
        assert_eq!(row(&c, 1, 3), flat(&a));
        assert_eq!(row(&c, 2, 1), flat(&b));
        assert_eq!(c.rows_full().unwrap().0.dim(2).unwrap(), cap, "the room is kept");
        assert!(cap >= 3 + 100);
    }

    #[test]
    fn prompts_added_together_equal_prompts_added_one_by_one() {
        let dev = Device::Cpu;
        let t = |v: &[f32]| Tensor::new(v, &dev).unwrap().reshape((1, 1, v.len(), 1)).unwrap();
        let (a, b, c) = (t(&[1., 2., 3.]), t(&[4.]), t(&[5., 6.]));
        let (mut one, mut many) = (KvCache::default(), KvCache::default());
        for cache in [&mut one, &mut many] {
            cache.append_prefix(&t(&[0., 0.]), &t(&[0., 0.])).unwrap();
            cache.add_rows(&b, &b, 1).unwrap();
            cache.append(&t(&[9.]), &t(&[9.])).unwrap(); // the existing row has grown a step
        }
        one.add_rows(&a, &a, 2).unwrap();
        one.add_rows(&c, &c, 1).unwrap();
        many.add_rows_many(&[(&a, &a, 2), (&c, &c, 1)]).unwrap();
        assert_eq!(one.row_lens(), &[2, 3, 3, 2]);
        assert_eq!(many.row_lens(), one.row_lens());
        for r in 0..4 {
            assert_eq!(row_values(&many, r), row_values(&one, r), "row {r}");
        }
        assert_eq!(row_values(&many, 0)[..2], [4., 9.]);
        assert_eq!(row_values(&many, 3)[..2], [5., 6.]);
        let (mk, mv) = many.rows().unwrap().unwrap();
        let (ok, ov) = one.rows().unwrap().unwrap();
        for (m, o) in [(mk, ok), (mv, ov)] {
            let flat = |x: Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(flat(m), flat(o));
        }
        assert!(many
            .add_rows_many(&[(&t(&[1.]), &Tensor::zeros((1, 2, 1, 1), DType::F32, &dev).unwrap(), 1)])
            .is_err());
    }

    #[test]
    fn rows_from_other_prompts_keep_their_own_lengths_and_mask_the_rest() {
        let dev = Device::Cpu;
        let mut c = KvCache::default();
        let p = Tensor::zeros((1, 1, 2, 1), DType::F32, &dev).unwrap();
        c.append_prefix(&p, &p).unwrap(); // shared: 2 positions
        let q1 = Tensor::new(&[10f32, 11., 12.], &dev).unwrap().reshape((1, 1, 3, 1)).unwrap();
        c.add_rows(&q1, &q1, 2).unwrap();
        let q2 = Tensor::new(&[20f32], &dev).unwrap().reshape((1, 1, 1, 1)).unwrap();
        c.add_rows(&q2, &q2, 1).unwrap();
        assert_eq!(c.row_lens(), &[3, 3, 1]);
        let step = Tensor::new(&[[[[1f32]]], [[[2f32]]], [[[3f32]]]], &dev).unwrap();
        c.append(&step, &step).unwrap();
        assert_eq!(c.row_lens(), &[4, 4, 2]);
        assert_eq!(row_values(&c, 0), vec![10., 11., 12., 1.]);
        assert_eq!(row_values(&c, 2)[..2], [20., 3.]);
        let mask: Vec<f32> = c.row_mask().unwrap().unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(&mask[..6], &[0., 0., 0., 0., 0., 0.]);
        assert_eq!(&mask[12..], &[0., 0., 0., 0., inf, inf]);
        // The short row ends: the rest are equal again and need no mask.
        c.select_rows(&[0, 1]).unwrap();
        assert!(c.row_mask().unwrap().is_none());
        assert_eq!(c.len(), 6);
        c.select_rows(&[]).unwrap();
        assert_eq!(c.len(), 2);
        c.add_rows(&q2, &q2, 1).unwrap();
        assert_eq!(row_values(&c, 0), vec![20.]);
    }
}
