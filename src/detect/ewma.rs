//! Exponentially weighted mean and variance: the classic z-score baseline.

#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Ewma {
    pub mean: f64,
    pub var: f64,
    pub initialized: bool,
}

impl Ewma {
    pub fn std(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    /// z-score of `x` against the state before the update.
    pub fn z(&self, x: f64, floor: f64) -> f64 {
        if !self.initialized {
            return 0.0;
        }
        (x - self.mean).abs() / self.std().max(floor)
    }

    /// Updates with `x`, winsorized at `clip` standard deviations so that one outlier cannot
    /// drag the baseline towards itself.
    pub fn update(&mut self, x: f64, alpha: f64, clip: f64, floor: f64) {
        if !self.initialized {
            self.mean = x;
            self.var = 0.0;
            self.initialized = true;
            return;
        }
        let limit = clip * self.std().max(floor);
        let diff = (x - self.mean).clamp(-limit, limit);
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_mean_and_std() {
        let mut e = Ewma::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let x = 10.0 + (rng.f64() - 0.5) * 2.0 * 3f64.sqrt(); // uniform, std 1
            e.update(x, 0.01, 10.0, 1e-9);
        }
        assert!((e.mean - 10.0).abs() < 0.3, "{}", e.mean);
        assert!((e.std() - 1.0).abs() < 0.2, "{}", e.std());
    }
}
