//! The statistics `report` and the experiments view print: a 95% Wilson score interval for an accuracy,
//! and the exact McNemar test for two runs over the same questions.

use serde::{Deserialize, Serialize};

/// The normal quantile for a two-sided 95% interval, Φ⁻¹(0.975) (scipy.stats.norm.ppf(0.975)).
const Z95: f64 = 1.959_963_984_540_054;

/// A proportion's confidence interval, both ends in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The 95% Wilson score interval of `successes` out of `trials`. Unlike the normal ("Wald") interval it
/// stays inside [0, 1] and is not zero-width at 0 or n successes, which matters for small samples.
/// With no trials nothing is known: [0, 1].
pub fn wilson(successes: usize, trials: usize) -> Interval {
    if trials == 0 {
        return Interval { low: 0.0, high: 1.0 };
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or n successes one end is exactly 0 or 1; rounding would leave it a hair inside.
    let low = if successes == 0 { 0.0 } else { (center - half).max(0.0) };
    let high = if successes >= trials { 1.0 } else { (center + half).min(1.0) };
    Interval { low, high }
}

/// The exact (binomial) two-sided McNemar p-value for paired outcomes: `a_only` questions only run A got
/// right, `b_only` only run B got right. Under the null each discordant question is a fair coin, so
/// p = min(1, 2·P(X ≤ min(a_only, b_only))) with X ~ Binomial(a_only + b_only, 1/2). No discordant
/// questions: p = 1.
pub fn mcnemar_exact(a_only: usize, b_only: usize) -> f64 {
    let n = a_only + b_only;
    let k = a_only.min(b_only);
    (2.0 * binomial_half_cdf(k, n)).min(1.0)
}

/// P(X ≤ k) for X ~ Binomial(n, 1/2). Terms are built in log space so n in the thousands (a whole
/// GSM8K test set) neither overflows C(n, i) nor underflows 2⁻ⁿ.
fn binomial_half_cdf(k: usize, n: usize) -> f64 {
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut sum = 0.0f64;
    for i in 0..=k.min(n) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (ln_choose + ln_half_n).exp();
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_by_hand() {
        // 0 of 10 (scipy agrees: 0.27753279986288926): center = (z²/20)/(1+z²/10), half = z/(1+z²/10)·sqrt(z²/400) = (z²/20)/(1+z²/10),
        // so low = 0 and high = (z²/10)/(1+z²/10) = 3.841459/13.841459 = 0.2775328.
        let i = wilson(0, 10);
        assert_eq!(i.low, 0.0);
        assert!(close(i.high, 0.277_532_8, 1e-7), "{i:?}");
        // 5 of 10 is symmetric around 1/2.
        let i = wilson(5, 10);
        assert!(close(i.low + i.high, 1.0, 1e-12), "{i:?}");
        // n successes mirrors 0 successes.
        let i = wilson(10, 10);
        assert!(close(i.low, 1.0 - 0.277_532_8, 1e-7) && i.high == 1.0, "{i:?}");
        assert_eq!(wilson(0, 0), Interval { low: 0.0, high: 1.0 });
    }

    #[test]
    fn wilson_against_scipy() {
        // scipy 1.17.1, computed once:
        // scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson").
        let cases: [(usize, usize, f64, f64); 5] = [
            (5, 10, 0.236593090512564, 0.7634069094874361),
            (1, 3, 0.06149194472039626, 0.7923403991979523),
            (7, 20, 0.1811918241010821, 0.5671457233147637),
            (45, 100, 0.35614537979511984, 0.5475539700255787),
            (1100, 1319, 0.8129194039993114, 0.8530712134896558),
        ];
        for (k, n, lo, hi) in cases {
            let i = wilson(k, n);
            assert!(close(i.low, lo, 1e-9) && close(i.high, hi, 1e-9), "{k}/{n}: {i:?} vs ({lo}, {hi})");
        }
    }

    #[test]
    fn mcnemar_by_hand() {
        // No discordant pairs: nothing to test.
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // 0 vs 5: 2·(1/2)^5 = 1/16.
        assert!(close(mcnemar_exact(0, 5), 0.0625, 1e-15));
        assert_eq!(mcnemar_exact(5, 0), mcnemar_exact(0, 5));
        // 1 vs 4: 2·(1 + 5)/32 = 0.375.
        assert!(close(mcnemar_exact(1, 4), 0.375, 1e-15));
        // 3 vs 3: the tail includes the middle, capped at 1.
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        // 2 vs 8: 2·(1 + 10 + 45)/1024 = 112/1024 = 0.109375.
        assert!(close(mcnemar_exact(2, 8), 0.109_375, 1e-15));
    }

    #[test]
    fn mcnemar_against_scipy() {
        // scipy 1.17.1, computed once:
        // scipy.stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue.
        let cases: [(usize, usize, f64); 4] = [
            (3, 12, 0.03515625),
            (10, 25, 0.016673847800120715),
            (40, 60, 0.05688793364098089),
            (600, 700, 0.0060157938610449395),
        ];
        for (b, c, p) in cases {
            let got = mcnemar_exact(b, c);
            assert!(close(got, p, 1e-12 + 1e-9 * p), "{b} vs {c}: {got} vs {p}");
        }
    }
}
