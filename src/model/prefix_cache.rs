//! The prefix cache: keys and values of prompts already prefilled, so a prompt that starts like an
//! earlier one (the same template's exemplars with another question, a rerun, a branch whose prompt
//! is an earlier prompt plus generated tokens) computes only the tokens after the longest match.
//!
//! Keyed on exact token ids, not text, so a hit is exact. Bounded by bytes, least recently used
//! out first. An entry holds the same tensors the model's KV cache holds for its prompt (candle
//! tensors share their storage), so caching the prompt being decoded costs nothing extra; only
//! prompts the model has moved away from take memory of their own.

use candle_core::{Result, Tensor};

/// Per layer, keys and values `1, h, L, d`.
pub type LayerKv = Vec<(Tensor, Tensor)>;

#[derive(Debug)]
struct Entry {
    tokens: Vec<u32>,
    layers: LayerKv,
    bytes: usize,
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

fn kv_bytes(layers: &LayerKv) -> usize {
    layers.iter().map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes()).sum()
}

impl PrefixCache {
    /// A cache holding at most `capacity_bytes` of keys and values (0 disables it).
    pub fn new(capacity_bytes: usize) -> Self {
        Self { capacity_bytes, ..Self::default() }
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Bytes of keys and values held.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The longest cached prefix of `prompt`, at most `max_len` tokens: its length and each layer's
    /// keys and values for it (`1, h, len, d`). The entry it came from becomes the most recent.
    pub fn lookup(&mut self, prompt: &[u32], max_len: usize) -> Result<Option<(usize, LayerKv)>> {
        let best = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt).min(max_len)))
            .max_by_key(|&(i, n)| (n, i));
        let Some((i, n)) = best.filter(|&(_, n)| n > 0) else {
            return Ok(None);
        };
        let entry = self.entries.remove(i);
        let layers = entry
            .layers
            .iter()
            .map(|(k, v)| Ok((k.narrow(2, 0, n)?, v.narrow(2, 0, n)?)))
            .collect::<Result<LayerKv>>()?;
        self.entries.push(entry);
        Ok(Some((n, layers)))
    }

    /// Remembers `layers` as the KV of `tokens`. An entry that is a prefix of `tokens` is dropped
    /// (the new one answers every lookup it would); nothing is added when `tokens` is already
    /// covered by a longer entry or alone exceeds the capacity.
    pub fn insert(&mut self, tokens: &[u32], layers: LayerKv) {
        if tokens.is_empty() || self.capacity_bytes == 0 {
            return;
        }
        if let Some(i) =
            self.entries.iter().position(|e| e.tokens.len() >= tokens.len() && e.tokens.starts_with(tokens))
        {
            let e = self.entries.remove(i);
            self.entries.push(e);
            return;
        }
        let bytes = kv_bytes(&layers);
        if bytes > self.capacity_bytes {
            return;
        }
        self.entries.retain(|e| !tokens.starts_with(&e.tokens));
        self.entries.push(Entry { tokens: tokens.to_vec(), layers, bytes });
        while self.entries.iter().map(|e| e.bytes).sum::<usize>() > self.capacity_bytes {
            self.entries.remove(0);
        }
        self.used_bytes = self.entries.iter().map(|e| e.bytes).sum();
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

    /// One layer whose key at position p is p (so narrowed values show which positions came back).
    fn kv(len: usize) -> LayerKv {
        let t = Tensor::arange(0f32, len as f32, &Device::Cpu).unwrap().reshape((1, 1, len, 1)).unwrap();
        vec![(t.clone(), t)]
    }

    fn positions(layers: &LayerKv) -> Vec<f32> {
        layers[0].0.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn longest_common_prefix_wins_and_is_capped() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2, 3, 4], kv(4));
        c.insert(&[1, 2, 9, 9, 9], kv(5));
        // Shares 3 tokens with the first entry, 2 with the second.
        let (n, layers) = c.lookup(&[1, 2, 3, 7, 7], 100).unwrap().unwrap();
        assert_eq!(n, 3);
        assert_eq!(positions(&layers), vec![0., 1., 2.]);
        // The whole prompt cached: at most max_len (the caller computes the last token itself).
        let (n, _) = c.lookup(&[1, 2, 3, 4], 3).unwrap().unwrap();
        assert_eq!(n, 3);
        // A prompt extending a cached one hits all of it.
        let (n, _) = c.lookup(&[1, 2, 9, 9, 9, 5, 6], 6).unwrap().unwrap();
        assert_eq!(n, 5);
        assert!(c.lookup(&[8, 1, 2], 2).unwrap().is_none());
    }

    #[test]
    fn bounded_by_bytes_least_recently_used_out_first() {
        let per_token = 2 * 4; // k and v, one f32 each
        let mut c = PrefixCache::new(10 * per_token);
        c.insert(&[1, 1, 1, 1], kv(4));
        c.insert(&[2, 2, 2, 2], kv(4));
        assert_eq!(c.used_bytes(), 8 * per_token);
        c.lookup(&[1, 1, 5], 2).unwrap().unwrap(); // [1…] becomes the most recent
        c.insert(&[3, 3, 3], kv(3)); // 11 tokens > 10: the least recent ([2…]) goes
        assert_eq!(c.len(), 2);
        assert!(c.lookup(&[2, 2], 1).unwrap().is_none());
        assert!(c.lookup(&[1, 1], 1).unwrap().is_some());
        assert_eq!(c.used_bytes(), 7 * per_token);
        c.insert(&[4; 11], kv(11)); // larger than the whole cache: not kept, nothing evicted
        assert_eq!(c.len(), 2);
        let mut off = PrefixCache::new(0);
        off.insert(&[1, 2], kv(2));
        assert!(off.is_empty());
    }

    #[test]
    fn an_extension_replaces_its_prefix_and_a_prefix_adds_nothing() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2, 3], kv(3));
        c.insert(&[1, 2, 3, 4, 5], kv(5));
        assert_eq!(c.len(), 1);
        assert_eq!(c.used_bytes(), 5 * 8);
        c.insert(&[1, 2], kv(2));
        assert_eq!(c.len(), 1);
        assert_eq!(c.lookup(&[1, 2, 3, 4, 5, 6], 10).unwrap().unwrap().0, 5);
    }
}
