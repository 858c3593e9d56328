//! A small seeded pseudo-random generator for the simulator: xoshiro256**
//! seeded through splitmix64. It is not cryptographic; what matters here is
//! that the same seed gives the same city and the same events on every
//! machine and in every release, which a crate's generator does not promise.

/// xoshiro256** state.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes a seed with a stream label so that the city, the simulator and
/// each writer draw from independent sequences of one user-given seed.
pub(crate) fn stream_seed(seed: u64, label: &str) -> u64 {
    let mut h = seed ^ 0x6A09_E667_F3BC_C908;
    for b in label.bytes() {
        h = splitmix64(&mut (h ^ u64::from(b)));
    }
    h
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut x = seed;
        let state = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { state }
    }

    /// An independent generator for one purpose (`label`) of a seed.
    pub(crate) fn for_stream(seed: u64, label: &str) -> Rng {
        Rng::new(stream_seed(seed, label))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), with 53 bits of precision.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n); 0 when `n` is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        // Multiply-high maps 64 random bits onto [0, n); the bias is below
        // 2^-40 for every n the simulator uses.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform integer in [lo, hi).
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }

    /// A uniform index into a collection of `len` items.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.index(items.len()))
        }
    }

    /// An exponentially distributed wait with the given mean.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// An index drawn with probability proportional to `weights`; `None`
    /// when all weights are zero.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> Option<usize> {
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return Some(i);
            }
            x -= w;
        }
        weights.iter().rposition(|w| *w > 0.0)
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

/// Draws many indices in proportion to fixed weights, by binary search over
/// the running totals (the city draws thousands of cells from one table).
pub(crate) struct WeightedTable {
    cumulative: Vec<f64>,
}

impl WeightedTable {
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> WeightedTable {
        let mut total = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w.max(0.0);
                total
            })
            .collect();
        WeightedTable { cumulative }
    }

    /// `None` when every weight is zero.
    pub(crate) fn draw(&self, rng: &mut Rng) -> Option<usize> {
        let total = *self.cumulative.last()?;
        if total <= 0.0 {
            return None;
        }
        let x = rng.unit() * total;
        let i = self.cumulative.partition_point(|c| *c <= x);
        Some(i.min(self.cumulative.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(7) < 7);
            let x = r.between(5, 9);
            assert!((5..9).contains(&x));
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.weighted(&[0.0, 0.0]), None);
        assert_eq!(r.weighted(&[0.0, 2.0]), Some(1));
        let t = WeightedTable::new([0.0, 1.0, 0.0, 3.0]);
        let mut hits = [0usize; 4];
        for _ in 0..4000 {
            hits[t.draw(&mut r).unwrap()] += 1;
        }
        assert_eq!(hits[0] + hits[2], 0);
        assert!(hits[3] > 2 * hits[1], "{hits:?}");
    }
}
