//! Checkpoints: exact round trips, pruning, and that neither a killed
//! writer nor a damaged file can make a wrong checkpoint load.

use axle::checkpoint::{Checkpoint, CheckpointError, Checkpointer, Meta, Tensors, load};
use ndarray::{ArrayD, Dimension};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Arrays whose values identify the step, so a mix of two saves would show.
fn checkpoint(step: u64, elems: usize) -> Checkpoint {
    let array = |salt: f32, shape: &[usize]| {
        ArrayD::from_shape_fn(shape.to_vec(), |i| {
            step as f32 * 1000.0 + salt + i.as_array_view().sum() as f32 * 0.5
        })
    };
    let params: Tensors = [
        ("decoder/emb/weight".to_string(), array(1.0, &[elems, 4])),
        ("decoder/norm/scale".to_string(), array(2.0, &[4])),
    ]
    .into();
    let opt_state: Tensors = [(
        "adam/mu/decoder/emb/weight".to_string(),
        array(3.0, &[elems, 4]),
    )]
    .into();
    Checkpoint {
        step,
        params,
        opt_state,
        meta: Meta {
            input_position: step * 2,
            rng_state: 0xdead_beef ^ step,
            run: BTreeMap::from([("model".to_string(), "llama-tiny".to_string())]),
        },
    }
}

#[test]
fn round_trip_is_exact_and_old_checkpoints_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let saver = Checkpointer::new(dir.path(), 2);
    for step in [10, 20, 30] {
        saver.save(&checkpoint(step, 8)).unwrap();
    }
    let steps: Vec<u64> = saver.list().unwrap().iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [20, 30]);
    let restored = load(&saver.latest().unwrap().unwrap()).unwrap();
    assert_eq!(restored, checkpoint(30, 8));
}

fn damage(dir: &Path, file: &str, how: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    how(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn truncated_or_corrupted_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let saver = Checkpointer::new(dir.path(), 3);
    let saved = saver.save(&checkpoint(1, 8)).unwrap();

    damage(&saved, "params.safetensors", |b| {
        let last = b.len() - 1;
        b[last] ^= 0x40;
    });
    let err = load(&saved).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("params.safetensors"), "{err}");

    let saved = saver.save(&checkpoint(2, 8)).unwrap();
    damage(&saved, "opt_state.safetensors", |b| b.truncate(b.len() / 2));
    let err = load(&saved).unwrap_err();
    assert!(err.to_string().contains("opt_state.safetensors"), "{err}");

    let saved = saver.save(&checkpoint(3, 8)).unwrap();
    damage(&saved, "meta.json", |b| b.truncate(10));
    let err = load(&saved).unwrap_err();
    assert!(err.to_string().contains("meta.json"), "{err}");
}

/// The child side of `a_killed_save_leaves_the_previous_checkpoint_intact`:
/// saves ever larger checkpoints until it is killed.
#[test]
fn child_saves_until_killed() {
    let Some(dir) = std::env::var_os("AXLE_CHECKPOINT_CHILD_DIR") else {
        return;
    };
    let saver = Checkpointer::new(dir, 2);
    for step in 1.. {
        saver.save(&checkpoint(step, 200_000)).unwrap();
    }
}

#[test]
fn a_killed_save_leaves_the_previous_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    for delay_ms in [150, 400, 900] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_saves_until_killed", "--nocapture"])
            .env("AXLE_CHECKPOINT_CHILD_DIR", dir.path())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let saver = Checkpointer::new(dir.path(), 2);
        for (step, path) in saver.list().unwrap() {
            let restored = load(&path).unwrap();
            assert_eq!(restored, checkpoint(step, 200_000), "{}", path.display());
        }
    }
    let saver = Checkpointer::new(dir.path(), 2);
    assert!(
        !saver.list().unwrap().is_empty(),
        "the child never finished a save"
    );
}

#[test]
fn non_finite_values_are_found_in_parameters_and_optimizer_state() {
    let mut c = checkpoint(1, 3);
    assert_eq!(c.first_non_finite(), None);
    let mu = c.opt_state.get_mut("adam/mu/decoder/emb/weight").unwrap();
    mu[[2, 1]] = f32::NAN;
    assert_eq!(c.first_non_finite(), Some("adam/mu/decoder/emb/weight"));
    c.params.get_mut("decoder/norm/scale").unwrap()[[0]] = f32::INFINITY;
    assert_eq!(c.first_non_finite(), Some("decoder/norm/scale"));
}

/// `meta.json` is under its own checksum, and a checkpoint must be in the
/// directory of its step: an edited record (here, another model's config
/// line), a record without its checksum or a renamed directory is refused,
/// naming the file and the fault.
#[test]
fn an_edited_meta_file_or_a_renamed_step_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let saver = Checkpointer::new(dir.path(), 3);
    let saved = saver.save(&checkpoint(4, 8)).unwrap();
    damage(&saved, "meta.json", |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        *b = text.replace("llama-tiny", "llama-huge").into_bytes();
    });
    let err = load(&saved).unwrap_err().to_string();
    assert!(
        err.contains("meta.json") && err.contains("edited or damaged"),
        "{err}"
    );

    // Dropping the checksum does not switch the check off.
    let saved = saver.save(&checkpoint(6, 8)).unwrap();
    damage(&saved, "meta.json", |b| {
        let mut meta: serde_json::Value = serde_json::from_slice(b).unwrap();
        meta.as_object_mut().unwrap().remove("meta_crc32").unwrap();
        *b = serde_json::to_vec(&meta).unwrap();
    });
    let err = load(&saved).unwrap_err().to_string();
    assert!(
        err.contains("meta.json") && err.contains("no CRC-32"),
        "{err}"
    );

    let saved = saver.save(&checkpoint(5, 8)).unwrap();
    let renamed = dir.path().join("step_0000000009");
    std::fs::rename(&saved, &renamed).unwrap();
    let err = load(&renamed).unwrap_err().to_string();
    assert!(
        err.contains("records step 5") && err.contains("step 9"),
        "{err}"
    );
}
