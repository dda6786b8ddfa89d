//! The input pipeline against hand-computed expectations: file formats,
//! determinism, resumption, splits and every bad-input error.

use axle::data::{
    DataError, HostArray, HostBatch, LanguageModelSource, Loader, Split, Synthetic, TokenFile,
    TokenSource,
};
use ndarray::Array2;
use ndarray_npy::WriteNpyExt;
use std::collections::HashSet;

/// The `[batch, seq]` integer input `name` of a batch.
fn ids(batch: &HostBatch, name: &str) -> Array2<i32> {
    match &batch[name] {
        HostArray::I32(a) => a.clone().into_dimensionality().unwrap(),
        HostArray::F32(_) => panic!("{name} is f32"),
    }
}

fn lm(tokens: impl TokenSource + 'static, seq: usize) -> LanguageModelSource {
    LanguageModelSource::new(Box::new(tokens), seq)
}

#[test]
fn batches_are_deterministic_and_resume_from_a_position() {
    let task = lm(Synthetic::new(1024, 3), 128);
    let mut straight = Loader::new(&task, Split::Train, 8, 11);
    let batches: Vec<_> = (0..6).map(|_| straight.next_batch()).collect();
    let mut resumed = Loader::new(&task, Split::Train, 8, 11);
    resumed.seek(4);
    assert_eq!(resumed.next_batch(), batches[4]);
    assert_eq!(resumed.next_batch(), batches[5]);
    assert_eq!(resumed.position(), 6);
    let (inputs, targets) = (
        ids(&batches[0], "input_ids"),
        ids(&batches[0], "target_labels"),
    );
    assert_eq!(inputs.dim(), (8, 128));
    // Targets are the inputs shifted by one token.
    assert_eq!(
        inputs.slice(ndarray::s![.., 1..]),
        targets.slice(ndarray::s![.., ..127])
    );
    assert_ne!(batches[0], batches[1]);
    let other_seed = Loader::new(&task, Split::Train, 8, 12).batch_at(0);
    assert_ne!(other_seed, batches[0]);
}

#[test]
fn byte_file_windows_cover_the_train_split_once_per_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.txt");
    let text: Vec<u8> = (0..100u8).collect();
    std::fs::write(&path, &text).unwrap();
    let file = TokenFile::open(&path, 256, 4).unwrap();
    // 100 bytes: the last 10 are eval, so 90 train tokens give 86 windows of 5.
    assert_eq!(file.len(Split::Train), Some(86));
    assert_eq!(file.len(Split::Eval), Some(6));
    let source = lm(file, 4);
    let loader = Loader::new(&source, Split::Train, 2, 0);
    let starts: HashSet<i32> = (0..43)
        .flat_map(|p| ids(&loader.batch_at(p), "input_ids").column(0).to_vec())
        .collect();
    assert_eq!(starts, (0..86).collect::<HashSet<i32>>());
    let first = loader.batch_at(0);
    let row = ids(&first, "input_ids").row(0).to_vec();
    assert_eq!(row, (row[0]..row[0] + 4).collect::<Vec<_>>());
    assert_eq!(ids(&first, "target_labels")[[0, 3]], row[0] + 4);
    let eval = Loader::new(&source, Split::Eval, 6, 0).batch_at(0);
    assert!(ids(&eval, "input_ids").iter().all(|&t| t >= 90));
}

#[test]
fn uint16_and_npy_files_read_their_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("train.bin");
    let tokens: Vec<u16> = (0..40).map(|i| 1000 + i).collect();
    std::fs::write(&bin, le_bytes(&tokens)).unwrap();
    let file = TokenFile::open(&bin, 2048, 3).unwrap();
    let mut out = [0; 4];
    file.example(Split::Train, 2, &mut out);
    assert_eq!(out, [1002, 1003, 1004, 1005]);

    let npy = dir.path().join("rows.npy");
    let rows = ndarray::Array2::from_shape_fn((10, 5), |(r, c)| (r * 10 + c) as i64);
    rows.write_npy(std::fs::File::create(&npy).unwrap())
        .unwrap();
    let file = TokenFile::open(&npy, 100, 4).unwrap();
    assert_eq!(file.len(Split::Train), Some(9));
    assert_eq!(file.len(Split::Eval), Some(1));
    let mut row = [0; 5];
    file.example(Split::Eval, 0, &mut row);
    assert_eq!(row, [90, 91, 92, 93, 94]);
}

fn le_bytes(tokens: &[u16]) -> Vec<u8> {
    tokens.iter().flat_map(|t| t.to_le_bytes()).collect()
}

#[test]
fn bad_input_names_the_file_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.txt");
    let err = TokenFile::open(&missing, 256, 8).unwrap_err();
    assert!(matches!(err, DataError::Read { .. }));
    assert!(err.to_string().contains("nope.txt"), "{err}");

    let bin = dir.path().join("big.bin");
    std::fs::write(&bin, le_bytes(&[1, 2, 300, 4, 5, 6, 7, 8, 9, 10, 11, 12])).unwrap();
    let err = TokenFile::open(&bin, 256, 2).unwrap_err();
    assert!(
        err.to_string().contains("token 300 at index 2") && err.to_string().contains("big.bin"),
        "{err}"
    );

    let short = dir.path().join("short.txt");
    std::fs::write(&short, b"0123456789abcdefghij").unwrap();
    let err = TokenFile::open(&short, 256, 128).unwrap_err();
    assert!(
        matches!(err, DataError::TooShort { needed: 129, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("short.txt"), "{err}");

    let npy = dir.path().join("floats.npy");
    ndarray::Array2::<f32>::zeros((4, 4))
        .write_npy(std::fs::File::create(&npy).unwrap())
        .unwrap();
    let err = TokenFile::open(&npy, 256, 3).unwrap_err();
    assert!(matches!(err, DataError::Npy { .. }), "{err}");
}
