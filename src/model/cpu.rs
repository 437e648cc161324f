//! The one probe of the CPU's SIMD features. Every kernel that picks its code path at run time
//! (gemv, the prefill GEMM, the fused attentions, GELU, the bandwidth probe of `bench`) asks here,
//! so they agree on what the machine has (Intel AVX-512 and AMD Zen 4 machines both occur, and
//! AVX2-only ones such as AMD Zen 3).

use std::sync::OnceLock;

/// What the kernels may use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// AVX2 with FMA and F16C: the baseline vector path.
    pub avx2: bool,
    /// AVX-512F on top of `avx2`: the wide path.
    pub avx512: bool,
    /// AVX-512 BW, VL and VNNI on top of `avx512`: the q8_0 integer dot products.
    pub avx512_vnni: bool,
}

/// The features of the CPU this process runs on, probed once.
pub fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(probe)
}

#[cfg(target_arch = "x86_64")]
fn probe() -> Features {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
    let avx512 = avx2 && is_x86_feature_detected!("avx512f");
    let avx512_vnni = avx512
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni");
    Features { avx2, avx512, avx512_vnni }
}

#[cfg(not(target_arch = "x86_64"))]
fn probe() -> Features {
    Features { avx2: false, avx512: false, avx512_vnni: false }
}

/// A short name of the widest path, for reports: `avx512`, `avx2` or `portable`.
pub fn simd_name() -> &'static str {
    let f = features();
    if f.avx512 {
        "avx512"
    } else if f.avx2 {
        "avx2"
    } else {
        "portable"
    }
}

/// Bytes of one core's L2 cache, from sysfs (Linux), probed once; 1 MiB where it cannot be read
/// (Zen 4 has 1 MiB, Sapphire Rapids 2 MiB). Cache blocking sizes its working sets from it.
pub fn l2_bytes() -> usize {
    static L2: OnceLock<usize> = OnceLock::new();
    *L2.get_or_init(|| sysfs_cache_size_text(2).and_then(|s| parse_cache_size(&s)).unwrap_or(1 << 20))
}

/// Bytes of the last-level cache cpu0 sees (the highest `index` sysfs lists for it, L3 on current
/// x86 CPUs), probed once; `None` where sysfs does not say. Weights that fit in it are not streamed
/// from memory at every step, so no bandwidth bound applies to them.
pub fn last_level_cache_bytes() -> Option<usize> {
    static LLC: OnceLock<Option<usize>> = OnceLock::new();
    *LLC.get_or_init(|| (0..8).rev().find_map(sysfs_cache_size_text).and_then(|s| parse_cache_size(&s)))
}

/// The size sysfs gives for cpu0's cache `index` (Linux), as written there.
fn sysfs_cache_size_text(index: usize) -> Option<String> {
    std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu0/cache/index{index}/size")).ok()
}

/// sysfs's cache size: `2048K`, `1M` or plain bytes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let unit = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        _ => return None,
    };
    n.checked_mul(unit).filter(|&b| b > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_read_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("2048K\n"), Some(2 << 20));
        assert_eq!(parse_cache_size("1M"), Some(1 << 20));
        assert_eq!(parse_cache_size("65536"), Some(65536));
        assert_eq!(parse_cache_size("0K"), None);
        assert_eq!(parse_cache_size("12 KB"), None);
        assert_eq!(parse_cache_size(""), None);
        assert!(l2_bytes() >= 1 << 10);
        // The last level is at least as large as L2 wherever sysfs lists both.
        if std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index2/size").exists() {
            assert!(last_level_cache_bytes().is_some_and(|b| b >= l2_bytes()), "{:?}", last_level_cache_bytes());
        }
    }

    #[test]
    fn avx512_implies_avx2_and_the_name_agrees() {
        let f = features();
        assert!(!f.avx512 || f.avx2);
        assert!(!f.avx512_vnni || f.avx512);
        assert_eq!(simd_name() == "avx512", f.avx512);
        assert_eq!(simd_name() == "portable", !f.avx2);
    }
}
