//! Figures of repeated benchmark runs: median, min and max, as the benchmarks print them.

/// Samples of one figure.
#[derive(Debug, Default, Clone)]
pub struct Figures(Vec<f64>);

impl Figures {
    /// Adds a sample.
    pub fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median (the upper one of an even count).
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        v[v.len() / 2]
    }

    /// The `p` quantile (0..=1), nearest rank.
    pub fn quantile(&self, p: f64) -> f64 {
        let v = self.sorted();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    /// The samples in the order they were taken, `digits` decimals each: where in a run the
    /// slow ones fell.
    pub fn in_order(&self, digits: usize) -> String {
        let v: Vec<String> = self.0.iter().map(|x| format!("{x:.digits$}")).collect();
        v.join(" ")
    }

    /// `median 1.23 (min 1.00, max 2.00)` with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        let v = self.sorted();
        format!(
            "median {:.*} (min {:.*}, max {:.*})",
            digits,
            self.median(),
            digits,
            v[0],
            digits,
            v[v.len() - 1]
        )
    }
}
