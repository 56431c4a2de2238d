//! Random and truncated inputs to inspect/plan never panic.

use proptest::prelude::*;
use relive_patcher::{Target, inspect, plan};

use crate::fixtures;

/// The fixture files, read once per test (`None`: the tools to build them are missing).
fn samples() -> Option<Vec<Vec<u8>>> {
    let fx = fixtures::get()?;
    Some(
        [&fx.client64_signed, &fx.client32, &fx.sfx, &fx.msi]
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect(),
    )
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

fn check(data: &[u8]) {
    let _ = inspect(data);
    let t = Target::new("relive.test")
        .unwrap()
        .with_multiple_instances(true);
    if let Ok(p) = plan(data, &t) {
        let _ = relive_patcher::apply(data, &p, &mut |_| {});
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&data);
        let mut mz = b"MZ".to_vec();
        mz.extend(&data);
        check(&mz);
    }
}

#[test]
fn truncated_fixtures() {
    let Some(all) = samples() else {
        return;
    };
    proptest!(config(), |(which in 0usize..4, cut in 0.0f64..1.0)| {
        let data = &all[which];
        let len = (data.len() as f64 * cut) as usize;
        check(&data[..len]);
    });
}

#[test]
fn corrupted_fixtures() {
    let Some(all) = samples() else {
        return;
    };
    proptest!(config(), |(which in 0usize..4, flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..16))| {
        let mut data = all[which].clone();
        for (at, byte) in flips {
            let i = ((data.len() as f64) * at) as usize % data.len();
            data[i] = byte;
        }
        check(&data);
    });
}
