//! The one probe of the CPU's SIMD features. Every kernel that picks its code path at run time
//! (gemv, GELU, the bandwidth probe of `bench`) asks here, so they agree on what the machine has
//! (Intel AVX-512 and AMD Zen 4 machines both occur, and older AVX2-only ones).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx512_implies_avx2_and_the_name_agrees() {
        let f = features();
        assert!(!f.avx512 || f.avx2);
        assert!(!f.avx512_vnni || f.avx512);
        assert_eq!(simd_name() == "avx512", f.avx512);
        assert_eq!(simd_name() == "portable", !f.avx2);
    }
}
