//! A small log-linear latency histogram in microseconds (about 1.6 % resolution).

const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Up to 2^40 µs, far beyond any bounded run.
const BUCKETS: usize = (LINEAR + (40 - 7 + 1) * SUB) as usize;

#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64; // >= 7
    let sub = (v >> (e - SUB_BITS as u64)) & (SUB - 1);
    ((LINEAR + (e - 7) * SUB + sub) as usize).min(BUCKETS - 1)
}

/// The highest value that falls into bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let e = (i - LINEAR) / SUB + 7;
    let sub = (i - LINEAR) % SUB;
    let width = 1u64 << (e - SUB_BITS as u64);
    (1u64 << e) + sub * width + width - 1
}

impl Hist {
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.n += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The value at quantile `q` (0..=1), in µs; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// `p50 / p99 / p99.9 / max` in milliseconds.
    pub fn summary_ms(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            ms(self.quantile(0.50)),
            ms(self.quantile(0.99)),
            ms(self.quantile(0.999)),
            ms(self.max)
        )
    }
}

pub fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for v in [0u64, 1, 127, 128, 129, 255, 256, 1000, 10_000, 1 << 30] {
            let i = index(v);
            assert!(i >= last, "index not monotonic at {v}");
            assert!(upper(i) >= v, "upper({i}) = {} < {v}", upper(i));
            assert!(upper(i) - v <= v / 50 + 1, "bucket too wide at {v}");
            last = i;
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Hist::default();
        for v in 1..=1000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((495..=510).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((985..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
    }
}
