//! Prints doubles and their RFC 8785 spelling, one JSON line each, for a verifier written
//! elsewhere to compare with its own (`.ci/run` checks them with Python's `rfc8785`):
//!
//! ```text
//! cargo run -p agent-core --example canonical_numbers -- [COUNT]   # {"bits": "3ff8…", "canonical": "1.5"}
//! ```
//!
//! The doubles are the edge cases of RFC 8785 Appendix B, then COUNT (default 100000) random ones:
//! a third any bit pattern, a third integers of every size, a third short decimal fractions
//! (prices, rates), where a spelling slip is likeliest to matter.

use agent_core::canonical::to_canonical_string;
use serde_json::json;

const EDGES: [u64; 14] = [
    0x0000_0000_0000_0001,
    0x7fef_ffff_ffff_ffff,
    0x4340_0000_0000_0000,
    0x4430_0000_0000_0000,
    0x44b5_2d02_c7e1_4af5,
    0x44b5_2d02_c7e1_4af6,
    0x44b5_2d02_c7e1_4af7,
    0x444b_1ae4_d6e2_ef4e,
    0x444b_1ae4_d6e2_ef50,
    0x3eb0_c6f7_a0b5_ed8c,
    0x3eb0_c6f7_a0b5_ed8d,
    0x41b3_de43_5555_5554,
    0xbecb_f647_612f_3696,
    0x4314_3ff3_c1cb_0959,
];

fn main() {
    let count: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mut rng = fastrand::Rng::with_seed(8785);
    let mut random = Vec::with_capacity(count);
    while random.len() < count {
        let value = match random.len() % 3 {
            0 => f64::from_bits(rng.u64(..)),
            #[allow(clippy::cast_precision_loss)] // the point: integers of every size as doubles
            1 => (rng.i64(..) >> rng.u32(0..63)) as f64,
            _ => {
                let scale = [10.0, 100.0, 1000.0][rng.usize(..3)];
                f64::from(rng.i32(-10_000_000..10_000_000)) / scale
            }
        };
        if value.is_finite() {
            random.push(value.to_bits());
        }
    }
    for bits in EDGES.into_iter().chain(random) {
        let canonical = to_canonical_string(&json!(f64::from_bits(bits)));
        println!("{}", json!({ "bits": format!("{bits:016x}"), "canonical": canonical }));
    }
}
