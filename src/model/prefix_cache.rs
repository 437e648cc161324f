//! The prefix cache: keys and values of prompts already prefilled, so a prompt that starts like an
//! earlier one (the same template's exemplars with another question, a rerun, a branch whose prompt
//! is an earlier prompt plus generated tokens) computes only the tokens after the longest match.
//!
//! Keyed on exact token ids, not text, so a hit is exact. Bounded by bytes, least recently used
//! out first.
//!
//! An entry is a list of parts, each the keys and values of a run of consecutive positions, and
//! entries share parts: a question prefilled after a cached template keeps the template's part (the
//! same tensors) and adds only its own tokens. A hit always ends on a part's edge: the first hit
//! inside a part splits it in two for every entry that holds it (one copy), so every later hit is
//! whole parts that the model's cache and attention use as they are. So a question switch copies
//! nothing and takes no fresh memory for the template (fresh pages are zeroed by the kernel first,
//! which with a full page cache doubled a warm question switch), and the cache holds a question in
//! the few megabytes of its own tokens. A prompt prefilled from nothing keeps the tensors the
//! model's KV cache holds (candle tensors share their storage), so caching the prompt being decoded
//! costs nothing extra.

use std::collections::HashSet;
use std::sync::Arc;

use candle_core::{Result, Tensor};

/// Per layer, keys and values `1, h, L, d`.
pub type LayerKv = Vec<(Tensor, Tensor)>;

/// The keys and values of a run of positions, held by every entry that uses it.
#[derive(Debug)]
struct Part {
    layers: LayerKv,
    /// Positions held.
    len: usize,
    bytes: usize,
}

impl Part {
    fn new(layers: LayerKv, len: usize) -> Arc<Self> {
        let bytes = layers.iter().map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes()).sum();
        Arc::new(Self { layers, len, bytes })
    }

    /// Positions `a..b` as a part of their own (copied, so it holds only them).
    fn range(&self, a: usize, b: usize) -> Result<Arc<Self>> {
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((k.narrow(2, a, b - a)?.force_contiguous()?, v.narrow(2, a, b - a)?.force_contiguous()?)))
            .collect::<Result<LayerKv>>()?;
        Ok(Self::new(layers, b - a))
    }
}

#[derive(Debug)]
struct Entry {
    tokens: Vec<u32>,
    /// Whole parts, consecutive, covering `tokens`.
    parts: Vec<Arc<Part>>,
}

/// A cached prefix of a prompt, as [`PrefixCache::lookup`] found it: whole parts.
#[derive(Debug, Clone)]
pub struct CachedPrefix {
    len: usize,
    parts: Vec<Arc<Part>>,
}

impl CachedPrefix {
    /// Positions covered.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Per layer, its parts' keys and values (`1, h, Lᵢ, d` each, in position order): the cached
    /// tensors themselves.
    pub fn layers(&self) -> Vec<LayerKv> {
        let layers = self.parts.first().map_or(0, |p| p.layers.len());
        (0..layers).map(|l| self.parts.iter().map(|p| p.layers[l].clone()).collect()).collect()
    }
}

/// Prompts' KV caches by token ids, most recently used last.
#[derive(Debug, Default)]
pub struct PrefixCache {
    capacity_bytes: usize,
    used_bytes: usize,
    entries: Vec<Entry>,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Bytes of the distinct parts in `parts` (a part shared by several counts once).
fn unique_bytes<'a>(parts: impl Iterator<Item = &'a Arc<Part>>) -> usize {
    let mut seen = HashSet::new();
    parts.filter(|p| seen.insert(Arc::as_ptr(p))).map(|p| p.bytes).sum()
}

impl PrefixCache {
    /// A cache holding at most `capacity_bytes` of keys and values (0 disables it).
    pub fn new(capacity_bytes: usize) -> Self {
        Self { capacity_bytes, ..Self::default() }
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Bytes of keys and values held (parts shared by several prompts count once).
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The longest cached prefix of `prompt`, at most `max_len` tokens. The entry it came from
    /// becomes the most recent. A hit ending inside a part splits that part first (see the module
    /// documentation); an error there leaves the cache as it was.
    pub fn lookup(&mut self, prompt: &[u32], max_len: usize) -> Result<Option<CachedPrefix>> {
        let best = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt).min(max_len)))
            .max_by_key(|&(i, n)| (n, i));
        let Some((i, n)) = best.filter(|&(_, n)| n > 0) else { return Ok(None) };
        let entry = self.entries.remove(i);
        self.entries.push(entry);
        let last = self.entries.len() - 1;
        // The part the hit ends in, and where in it.
        let mut at = 0;
        let mut cut = None;
        for p in &self.entries[last].parts {
            if n < at + p.len {
                cut = (n > at).then(|| (p.clone(), n - at));
                break;
            }
            at += p.len;
        }
        if let Some((part, m)) = cut {
            self.split(&part, m)?;
        }
        let mut parts = Vec::new();
        let mut covered = 0;
        for p in &self.entries[last].parts {
            if covered == n {
                break;
            }
            covered += p.len;
            parts.push(p.clone());
        }
        Ok(Some(CachedPrefix { len: n, parts }))
    }

    /// Replaces `part` by its positions `..m` and `m..` in every entry that holds it.
    fn split(&mut self, part: &Arc<Part>, m: usize) -> Result<()> {
        let (head, tail) = (part.range(0, m)?, part.range(m, part.len)?);
        for e in &mut self.entries {
            if e.parts.iter().any(|p| Arc::ptr_eq(p, part)) {
                e.parts = e
                    .parts
                    .iter()
                    .flat_map(|p| if Arc::ptr_eq(p, part) { vec![head.clone(), tail.clone()] } else { vec![p.clone()] })
                    .collect();
            }
        }
        self.used_bytes = unique_bytes(self.entries.iter().flat_map(|e| &e.parts));
        Ok(())
    }

    /// Remembers the KV of `tokens`: `prefix` (from [`Self::lookup`]) for its first positions and
    /// `own` (`1, h, len, d` per layer, contiguous) for the rest. An entry that is a prefix of
    /// `tokens` is dropped (the new one answers every lookup it would); nothing is added when
    /// `tokens` is already covered by a longer entry or alone exceeds the capacity.
    pub fn insert(&mut self, tokens: &[u32], prefix: Option<&CachedPrefix>, own: LayerKv) -> Result<()> {
        if tokens.is_empty() || self.capacity_bytes == 0 {
            return Ok(());
        }
        if let Some(i) = self.entries.iter().position(|e| e.tokens.starts_with(tokens)) {
            let e = self.entries.remove(i);
            self.entries.push(e);
            return Ok(());
        }
        let mut parts = prefix.map(|p| p.parts.clone()).unwrap_or_default();
        let cached = prefix.map_or(0, |p| p.len);
        let own_len = match own.first() {
            Some((k, _)) => k.dim(2)?,
            None => 0,
        };
        if cached + own_len != tokens.len() {
            candle_core::bail!("prefix cache: {cached} cached and {own_len} own positions for {} tokens", tokens.len());
        }
        if own_len > 0 {
            parts.push(Part::new(own, own_len));
        }
        if unique_bytes(parts.iter()) > self.capacity_bytes {
            return Ok(());
        }
        self.entries.retain(|e| !tokens.starts_with(&e.tokens));
        self.entries.push(Entry { tokens: tokens.to_vec(), parts });
        loop {
            self.used_bytes = unique_bytes(self.entries.iter().flat_map(|e| &e.parts));
            if self.used_bytes <= self.capacity_bytes {
                return Ok(());
            }
            self.entries.remove(0);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.used_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One layer whose key at position p is `first + p` (so values show which positions came back).
    fn kv_from(first: usize, len: usize) -> LayerKv {
        let t =
            Tensor::arange(first as f32, (first + len) as f32, &Device::Cpu).unwrap().reshape((1, 1, len, 1)).unwrap();
        vec![(t.clone(), t)]
    }

    fn kv(len: usize) -> LayerKv {
        kv_from(0, len)
    }

    fn hit(c: &mut PrefixCache, prompt: &[u32], max_len: usize) -> Option<CachedPrefix> {
        c.lookup(prompt, max_len).unwrap()
    }

    /// Layer 0's keys of a hit, its parts in order.
    fn positions(p: &CachedPrefix) -> Vec<f32> {
        p.layers()[0].iter().flat_map(|(k, _)| k.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    #[test]
    fn longest_common_prefix_wins_and_is_capped() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2, 3, 4], None, kv(4)).unwrap();
        c.insert(&[1, 2, 9, 9, 9], None, kv(5)).unwrap();
        // Shares 3 tokens with the first entry, 2 with the second.
        let p = hit(&mut c, &[1, 2, 3, 7, 7], 100).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(positions(&p), vec![0., 1., 2.]);
        // The whole prompt cached: at most max_len (the caller computes the last token itself).
        assert_eq!(hit(&mut c, &[1, 2, 3, 4], 3).unwrap().len(), 3);
        // A prompt extending a cached one hits all of it.
        assert_eq!(hit(&mut c, &[1, 2, 9, 9, 9, 5, 6], 6).unwrap().len(), 5);
        assert!(hit(&mut c, &[8, 1, 2], 2).is_none());
    }

    #[test]
    fn bounded_by_bytes_least_recently_used_out_first() {
        let per_token = 2 * 4; // k and v, one f32 each
        let mut c = PrefixCache::new(10 * per_token);
        c.insert(&[1, 1, 1, 1], None, kv(4)).unwrap();
        c.insert(&[2, 2, 2, 2], None, kv(4)).unwrap();
        assert_eq!(c.used_bytes(), 8 * per_token);
        hit(&mut c, &[1, 1, 5], 2).unwrap(); // [1…] becomes the most recent
        c.insert(&[3, 3, 3], None, kv(3)).unwrap(); // 11 tokens > 10: the least recent ([2…]) goes
        assert_eq!(c.len(), 2);
        assert!(hit(&mut c, &[2, 2], 1).is_none());
        assert!(hit(&mut c, &[1, 1], 1).is_some());
        assert_eq!(c.used_bytes(), 7 * per_token, "splitting a part keeps its bytes");
        c.insert(&[4; 11], None, kv(11)).unwrap(); // larger than the whole cache: not kept, nothing evicted
        assert_eq!(c.len(), 2);
        let mut off = PrefixCache::new(0);
        off.insert(&[1, 2], None, kv(2)).unwrap();
        assert!(off.is_empty());
    }

    #[test]
    fn an_extension_replaces_its_prefix_and_a_prefix_adds_nothing() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2, 3], None, kv(3)).unwrap();
        c.insert(&[1, 2, 3, 4, 5], None, kv(5)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.used_bytes(), 5 * 8);
        c.insert(&[1, 2], None, kv(2)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(hit(&mut c, &[1, 2, 3, 4, 5, 6], 10).unwrap().len(), 5);
    }

    #[test]
    fn prompts_after_a_cached_prefix_share_its_part_and_hits_are_whole_parts() {
        let per_token = 2 * 4;
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2, 3, 4], None, kv(4)).unwrap();
        // Two questions after the first 3 tokens, each adding only its own positions. The first hit
        // ends inside the prompt's part, which is split there (for its entry too).
        for (q, first) in [(7, 100), (8, 200)] {
            let p = hit(&mut c, &[1, 2, 3, q, q], 4).unwrap();
            assert_eq!((p.len(), p.layers()[0].len()), (3, 1));
            c.insert(&[1, 2, 3, q, q], Some(&p), kv_from(first, 2)).unwrap();
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.used_bytes(), (4 + 2 + 2) * per_token, "the shared part counts once");
        assert_eq!(positions(&hit(&mut c, &[1, 2, 3, 4], 4).unwrap()), vec![0., 1., 2., 3.]);
        // A hit across two parts comes back as both, in order.
        let p = hit(&mut c, &[1, 2, 3, 8, 8, 9], 10).unwrap();
        assert_eq!(p.layers()[0].len(), 2);
        assert_eq!(positions(&p), vec![0., 1., 2., 200., 201.]);
        // One ending inside the question's part splits that one.
        let p = hit(&mut c, &[1, 2, 3, 7], 10).unwrap();
        assert_eq!(positions(&p), vec![0., 1., 2., 100.]);
        assert_eq!(positions(&hit(&mut c, &[1, 2, 3, 7, 7], 10).unwrap()), vec![0., 1., 2., 100., 101.]);
        // A prompt after a two-part prefix keeps both parts and adds a third.
        let p = hit(&mut c, &[1, 2, 3, 7, 7, 5], 5).unwrap();
        c.insert(&[1, 2, 3, 7, 7, 5], Some(&p), kv_from(300, 1)).unwrap();
        assert_eq!(positions(&hit(&mut c, &[1, 2, 3, 7, 7, 5], 6).unwrap()), vec![0., 1., 2., 100., 101., 300.]);
        assert_eq!(c.used_bytes(), (4 + 2 + 2 + 1) * per_token);
        // The own part must cover exactly the tokens after the prefix.
        let p = hit(&mut c, &[1, 2, 6, 6], 3).unwrap();
        assert!(c.insert(&[1, 2, 6, 6], Some(&p), kv(1)).is_err());
    }

    #[test]
    fn a_shared_part_outlives_the_entry_it_came_from_and_frees_with_the_last_user() {
        let per_token = 2 * 4;
        let mut c = PrefixCache::new(7 * per_token);
        c.insert(&[1, 2, 3], None, kv(3)).unwrap();
        let p = hit(&mut c, &[1, 2, 3, 4], 3).unwrap();
        c.insert(&[1, 2, 3, 4], Some(&p), kv_from(40, 1)).unwrap();
        let p = hit(&mut c, &[1, 2, 3, 9], 3).unwrap();
        c.insert(&[1, 2, 3, 9], Some(&p), kv_from(50, 1)).unwrap();
        assert_eq!(c.used_bytes(), 5 * per_token);
        hit(&mut c, &[1, 2, 3, 9], 4).unwrap(); // [1, 2, 3, 9] most recent
                                                // 3 positions more: the least recent entry goes, and the part it shared stays.
        c.insert(&[5, 5, 5], None, kv(3)).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(hit(&mut c, &[1, 2, 3, 4], 4).unwrap().len(), 3, "[1, 2, 3, 4] went");
        assert_eq!(c.used_bytes(), 7 * per_token);
        assert_eq!(positions(&hit(&mut c, &[1, 2, 3, 9], 4).unwrap()), vec![0., 1., 2., 50.]);
        // Now [5…] and then [6…] are the most recent: [1, 2, 3, 9] goes, and the shared part with it.
        hit(&mut c, &[5], 1).unwrap();
        c.insert(&[6, 6, 6], None, kv(3)).unwrap();
        assert_eq!(c.used_bytes(), 6 * per_token);
        assert!(hit(&mut c, &[1], 1).is_none());
    }
}
