//! Host-side parameter initialisation, deterministic in (seed, parameter path) alone: the
//! values of a parameter do not depend on the device count, the mesh, or which other parameters
//! exist, so every run and every restore onto another mesh starts from the same numbers.

use ndarray::{ArrayD, IxDyn};

use crate::param::{Initializer, ParamSpec, ParamTree};

/// SplitMix64: a small, fast, well-mixed 64-bit generator; the stream for a parameter is fixed
/// by this code alone (no dependency whose algorithm could change between versions).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Standard normal truncated to [-2, 2] (rejection), not rescaled.
    fn truncated_normal(&mut self) -> f64 {
        loop {
            let z = self.normal();
            if z.abs() <= 2.0 {
                return z;
            }
        }
    }
}

/// Standard deviation of a standard normal truncated to [-2, 2]; dividing by it restores std 1.
const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;

/// The generator state for one parameter: FNV-1a of the path, mixed with the seed.
fn stream(seed: u64, path: &str) -> SplitMix64 {
    let hash = path.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    });
    let mut mix = SplitMix64(seed ^ hash.rotate_left(32));
    SplitMix64(mix.next_u64())
}

/// Initial f32 values of one parameter, from its spec, path and the run's seed.
pub fn init_param(spec: &ParamSpec, path: &str, seed: u64) -> ArrayD<f32> {
    let shape = IxDyn(&spec.shape);
    let mut rng = stream(seed, path);
    let (std, truncated) = match spec.init {
        Initializer::Zeros => return ArrayD::zeros(shape),
        Initializer::Ones => return ArrayD::ones(shape),
        Initializer::Constant { value } => return ArrayD::from_elem(shape, value as f32),
        Initializer::Normal { std } => (std, false),
        Initializer::TruncatedNormal { std } => (std, true),
        Initializer::FanIn { scale, truncated } => {
            (scale / (spec.fan_in() as f64).sqrt(), truncated)
        }
    };
    ArrayD::from_shape_simple_fn(shape, || {
        let z = if truncated {
            rng.truncated_normal() / TRUNCATED_STD
        } else {
            rng.normal()
        };
        (z * std) as f32
    })
}

/// Initial values of every parameter in `specs`, keyed like the specs.
pub fn init_params(specs: &ParamTree<ParamSpec>, seed: u64) -> ParamTree<ArrayD<f32>> {
    specs
        .iter()
        .map(|(path, spec)| (path.clone(), init_param(spec, path, seed)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::FanAxes;
    use axle_compiler::DType;
    use axle_partition::LogicalSpec;

    fn spec(shape: &[usize], init: Initializer) -> ParamSpec {
        ParamSpec {
            shape: shape.to_vec(),
            dtype: DType::F32,
            init,
            fan_axes: FanAxes {
                fan_in: vec![0],
                fan_out: vec![1],
                batch: vec![],
            },
            roles: LogicalSpec::replicated(shape.len()),
        }
    }

    fn moments(a: &ArrayD<f32>) -> (f64, f64) {
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn values_depend_only_on_seed_and_path() {
        let s = spec(&[64, 32], Initializer::Normal { std: 1.0 });
        let a = init_params(&ParamTree::from([("a/w".to_string(), s.clone())]), 7);
        let both = ParamTree::from([
            ("a/w".to_string(), s.clone()),
            ("b/w".to_string(), s.clone()),
        ]);
        let b = init_params(&both, 7);
        assert_eq!(a["a/w"], b["a/w"], "adding a parameter changes no other");
        assert_ne!(b["a/w"], b["b/w"], "different paths draw different values");
        assert_ne!(
            init_param(&s, "a/w", 8),
            a["a/w"],
            "different seeds draw different values"
        );
    }

    #[test]
    fn distributions_have_the_requested_moments() {
        // 65536 samples: the sample std of a normal is within 1% of the true one with
        // overwhelming probability (its standard error is std / sqrt(2n) = 0.28%).
        // The sample mean's standard error is std / sqrt(n) = 0.125 / 256 ~ 0.0005: allow 4 of them.
        let fan_in = Initializer::FanIn {
            scale: 2.0,
            truncated: false,
        };
        let (mean, std) = moments(&init_param(&spec(&[256, 256], fan_in), "w", 1));
        assert!(
            mean.abs() < 0.002 && (std / (2.0 / 16.0) - 1.0).abs() < 0.01,
            "{mean} {std}"
        );
        let t = init_param(
            &spec(&[256, 256], Initializer::TruncatedNormal { std: 0.5 }),
            "t",
            1,
        );
        let (_, std) = moments(&t);
        assert!((std / 0.5 - 1.0).abs() < 0.01, "{std}");
        assert!(
            t.iter()
                .all(|&x| x.abs() <= (2.0 * 0.5 / TRUNCATED_STD) as f32 + 1e-6)
        );
        let c = init_param(
            &spec(&[3, 2], Initializer::Constant { value: 0.25 }),
            "c",
            1,
        );
        assert!(c.iter().all(|&x| x == 0.25));
        assert!(
            init_param(&spec(&[3], Initializer::Ones), "o", 1)
                .iter()
                .all(|&x| x == 1.0)
        );
    }
}
