//! The posterior of a bad fraction. The regularized incomplete beta function is written here
//! (Lentz's continued fraction, as in Numerical Recipes §6.4): the crates that have it
//! (statrs) bring a linear-algebra library for one function.

/// `I_x(a, b)`, the regularized incomplete beta function: `P(X ≤ x)` for `X ~ Beta(a, b)`.
///
/// ```
/// use vamp_core::rollout::verdict::beta_cdf;
/// assert!((beta_cdf(0.5, 1.0, 1.0) - 0.5).abs() < 1e-12);
/// assert!((beta_cdf(0.01, 1.0, 100.0) - (1.0 - 0.99f64.powi(100))).abs() < 1e-9);
/// ```
pub fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    // I_x(a, b) = 1 − I_{1−x}(b, a) otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        (front * continued_fraction(x, a, b) / a).clamp(0.0, 1.0)
    } else {
        (1.0 - front * continued_fraction(1.0 - x, b, a) / b).clamp(0.0, 1.0)
    }
}

fn continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const EPSILON: f64 = 1e-14;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / not_tiny(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        // The even step, then the odd one.
        h *= lentz(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let delta = lentz(
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
            &mut c,
            &mut d,
        );
        h *= delta;
        if (delta - 1.0).abs() < EPSILON {
            break;
        }
    }
    h
}

/// One step of Lentz's method with coefficient `aa`: updates `c` and `d`, returns the factor.
fn lentz(aa: f64, c: &mut f64, d: &mut f64) -> f64 {
    *d = 1.0 / not_tiny(1.0 + aa * *d);
    *c = not_tiny(1.0 + aa / *c);
    *d * *c
}

/// `v`, kept away from zero (Numerical Recipes' `FPMIN`).
fn not_tiny(v: f64) -> f64 {
    const TINY: f64 = 1e-300;
    if v.abs() < TINY { TINY } else { v }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The probability that the true bad fraction is within `allowed`, after `bad` of `n`
/// requests (see the module docs for the prior).
pub fn within_probability(bad: f64, n: f64, allowed: f64) -> f64 {
    let allowed = allowed.clamp(1e-9, 1.0 - 1e-9);
    let b0 = std::f64::consts::LN_2 / -(1.0 - allowed).ln();
    let bad = bad.clamp(0.0, n);
    beta_cdf(allowed, 1.0 + bad, b0 + (n - bad))
}
