//! ALiBi slopes exactly as Hugging Face's `build_alibi_tensor`, including head counts that are not a
//! power of two (the extra heads take every other slope of the next power of two).

/// One slope per head.
pub fn slopes(n_head: usize) -> Vec<f32> {
    let closest = 1usize << (usize::BITS - 1 - n_head.leading_zeros()); // largest power of two <= n_head
    let base = 2f64.powf(-(2f64.powf(-((closest as f64).log2() - 3.0))));
    let mut out: Vec<f32> = (1..=closest).map(|p| base.powi(p as i32) as f32).collect();
    if closest != n_head {
        let extra_base = 2f64.powf(-(2f64.powf(-((2 * closest) as f64).log2() + 3.0)));
        let remaining = (n_head - closest).min(closest);
        out.extend((0..remaining).map(|i| extra_base.powi((1 + 2 * i) as i32) as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_two_heads() {
        // For 8 heads the slopes are 2^-1 … 2^-8.
        let s = slopes(8);
        for (i, v) in s.iter().enumerate() {
            assert!((v - 2f32.powi(-(i as i32 + 1))).abs() < 1e-7);
        }
        // For 4 heads: 2^-2, 2^-4, 2^-6, 2^-8.
        let s = slopes(4);
        assert!((s[0] - 0.25).abs() < 1e-7 && (s[3] - 2f32.powi(-8)).abs() < 1e-9);
    }

    #[test]
    fn non_power_of_two_heads_interleave_the_next_power() {
        // 12 heads: the 8 slopes of 8 heads, then slopes 1,3,5,7 of 16 heads (2^-0.5 base steps).
        let s = slopes(12);
        assert_eq!(s.len(), 12);
        assert_eq!(&s[..8], &slopes(8)[..]);
        let b16 = 2f64.powf(-0.5);
        for (i, p) in [1, 3, 5, 7].iter().enumerate() {
            assert!((s[8 + i] as f64 - b16.powi(*p)).abs() < 1e-7);
        }
        assert_eq!(slopes(1), vec![2f32.powi(-8)]);
        assert_eq!(slopes(3).len(), 3);
    }
}
