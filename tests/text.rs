//! Tokenizers and packed text input: a byte-level BPE trained on the
//! repository's own sources decodes every file back exactly and compresses
//! them below 0.5 tokens per byte; packing lays documents out as the
//! closed form says; a packed row's per-document losses equal each
//! document's loss computed alone (on the CPU plugin); the streamed text
//! input resumes exactly from a saved state.

use axle::backend::{HostTensor, compile};
use axle::compiler::{DType, FunctionBuilder};
use axle::data::{HostArray, HostBatch, Split};
use axle::experiment::resolve_config;
use axle::modules::{
    Ctx, INPUT_IDS, POSITIONS, SEGMENT_IDS, TARGET_LABELS, declare_params, init_params,
};
use axle::runtime::Client;
use axle::text::{PackedText, PackedTextState, TextTokenizer, pack_documents};
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};

/// Every `.rs` file under the crates' source folders.
fn repository_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = [
        "src",
        "compiler/src",
        "partition/src",
        "runtime/src",
        "modules/src",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn bpe_trained_on_the_sources_round_trips_and_compresses_them() {
    let files = repository_sources();
    let mut tokenizer = TextTokenizer::train_bpe(&files, 4096).expect("trains");
    assert_eq!(tokenizer.vocab_size(), 4096);
    let dir = tempfile::tempdir().expect("temp dir");
    let saved = dir.path().join("tokenizer.json");
    tokenizer.save(&saved).expect("saves");
    let loaded = TextTokenizer::load(&saved).expect("loads");
    let (mut bytes, mut tokens) = (0usize, 0usize);
    for file in &files {
        let text = std::fs::read_to_string(file).expect("UTF-8 source");
        let ids = loaded.encode(&text).expect("encodes");
        // Exact: byte-level BPE is lossless, including non-ASCII (≈, →, ²).
        assert_eq!(
            loaded.decode(&ids).expect("decodes"),
            text,
            "{}",
            file.display()
        );
        assert_eq!(
            ids,
            tokenizer.encode(&text).expect("encodes"),
            "save/load changed {}",
            file.display()
        );
        bytes += text.len();
        tokens += ids.len();
    }
    let ratio = tokens as f64 / bytes as f64;
    eprintln!(
        "{} files, {bytes} bytes, {tokens} tokens: {ratio:.3} tokens/byte",
        files.len()
    );
    assert!(ratio < 0.5, "{ratio:.3} tokens per byte");
    assert!(
        TextTokenizer::train_bpe(&files, 100).is_err(),
        "a vocabulary below the 257 base tokens is refused"
    );
}

fn ids(batch: &HostBatch, name: &str) -> ArrayD<i32> {
    match &batch[name] {
        HostArray::I32(a) => a.clone(),
        HostArray::F32(_) => panic!("{name} is not i32"),
    }
}

#[test]
fn packing_follows_the_closed_form() {
    // Documents of 4, 3 and 6 tokens in rows of 6 slots: a document of n
    // tokens takes n - 1 slots; the third is cut after 1 slot and its rest
    // (from its last placed target) starts the next row at position 0,
    // whose last 2 slots stay unused (input 0, target -1, segment 0).
    let docs = vec![
        vec![10, 11, 12, 13],
        vec![20, 21, 22],
        vec![30, 31, 32, 33, 34, 35],
    ];
    let batch = pack_documents(&docs, 6);
    let expect =
        |rows: [[i32; 6]; 2]| ArrayD::from_shape_vec(IxDyn(&[2, 6]), rows.concat()).expect("2 x 6");
    let cases = [
        (
            INPUT_IDS,
            [[10, 11, 12, 20, 21, 30], [31, 32, 33, 34, 0, 0]],
        ),
        (
            TARGET_LABELS,
            [[11, 12, 13, 21, 22, 31], [32, 33, 34, 35, -1, -1]],
        ),
        (SEGMENT_IDS, [[1, 1, 1, 2, 2, 3], [1, 1, 1, 1, 0, 0]]),
        (POSITIONS, [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 0]]),
    ];
    for (name, rows) in cases {
        assert_eq!(ids(&batch, name), expect(rows), "{name}");
    }
    // A last row with room left masks it: targets -1, segment 0.
    let batch = pack_documents(&[vec![1, 2, 3]], 4);
    assert_eq!(
        ids(&batch, TARGET_LABELS).into_raw_vec_and_offset().0,
        vec![2, 3, -1, -1]
    );
    assert_eq!(
        ids(&batch, SEGMENT_IDS).into_raw_vec_and_offset().0,
        vec![1, 1, 0, 0]
    );
}

/// The mean cross-entropy of `batch` under a small llama-tiny (2 layers of
/// 64, RoPE) with parameters from seed 3, traced through `Model::loss`.
fn losses(batches: &[HostBatch]) -> Vec<f64> {
    let config = resolve_config(
        "llama-tiny",
        &[] as &[&str],
        &[
            "decoder.dim=64",
            "decoder.transformer.num_layers=2",
            "decoder.transformer.layers.0.feed_forward.hidden_dim=128",
            "decoder.vocab_size=256",
        ],
    )
    .expect("config");
    let model = config.model.build().expect("model");
    let specs = model.param_specs();
    let values = init_params(&specs, 3);
    let client = Client::cpu(1).expect("the CPU PJRT plugin loads (scripts/test.sh installs it)");
    batches
        .iter()
        .map(|batch| {
            let b = FunctionBuilder::new("loss");
            let params = declare_params(&b, &specs, DType::F32);
            let inputs = batch
                .iter()
                .map(|(name, a)| (name.clone(), b.param(name, DType::I32, a.shape())))
                .collect();
            let mut ctx = Ctx::new(params, false, None);
            let loss = model.loss(&mut ctx, &inputs).expect("traces").loss;
            let f = b.build(&[("loss", &loss)]).expect("builds");
            let mut args: Vec<HostTensor> = values.values().map(|v| v.clone().into()).collect();
            args.extend(batch.values().map(|a| {
                HostTensor::I32(match a {
                    HostArray::I32(a) => a.clone(),
                    HostArray::F32(_) => unreachable!("token batches are i32"),
                })
            }));
            let out = compile(&client, &f)
                .expect("compiles")
                .run(&args)
                .expect("runs");
            let loss: ArrayD<f32> = out[0].clone().try_into().expect("f32 loss");
            f64::from(loss.iter().next().copied().expect("scalar"))
        })
        .collect()
}

#[test]
fn a_packed_rows_document_losses_equal_each_documents_loss_alone() {
    let doc = |seed: i32, n: i32| {
        (0..n)
            .map(|i| (seed * 37 + i * 11 + i * i) % 256)
            .collect::<Vec<i32>>()
    };
    let docs = vec![doc(1, 20), doc(2, 31), doc(3, 12)];
    // 19 + 30 + 11 = 60 targets in one row of 64 slots (4 masked).
    let packed = pack_documents(&docs, 64);
    assert_eq!(ids(&packed, SEGMENT_IDS).shape(), [1, 64]);
    let segments = ids(&packed, SEGMENT_IDS);
    let mut batches = Vec::new();
    for d in 0..docs.len() {
        // The packed row with every target outside document d masked.
        let mut one = packed.clone();
        let labels = ids(&packed, TARGET_LABELS);
        let masked = ndarray::Zip::from(&labels)
            .and(&segments)
            .map_collect(|&l, &s| if s == d as i32 + 1 { l } else { -1 });
        one.insert(TARGET_LABELS.into(), HostArray::I32(masked));
        batches.push(one);
    }
    for doc in &docs {
        let n = doc.len() - 1;
        let row = |r: std::ops::Range<usize>| {
            HostArray::I32(ArrayD::from_shape_vec(IxDyn(&[1, n]), doc[r].to_vec()).expect("row"))
        };
        batches.push(HostBatch::from([
            (INPUT_IDS.to_string(), row(0..n)),
            (TARGET_LABELS.to_string(), row(1..n + 1)),
        ]));
    }
    // Control: the packed row without segment ids and positions (documents
    // see each other, positions run on), masked to document 2.
    let mut unpacked = batches[1].clone();
    unpacked.remove(SEGMENT_IDS);
    unpacked.remove(POSITIONS);
    batches.push(unpacked);
    let l = losses(&batches);
    for d in 0..docs.len() {
        let (packed, alone) = (l[d], l[docs.len() + d]);
        eprintln!("document {d}: packed {packed:.7}, alone {alone:.7}");
        // f32 through 2 layers: the same sums over different sequence
        // lengths (masked keys add exact zeros) differ only by rounding in
        // the reduction order; 1e-5 on a loss near ln(256) = 5.5 is about
        // 20 f32 ulps.
        assert!(
            (packed - alone).abs() < 1e-5,
            "document {d}: packed {packed} vs alone {alone}"
        );
    }
    let control = l[2 * docs.len()];
    assert!(
        (control - l[docs.len() + 1]).abs() > 1e-3,
        "without segment ids and positions document 2 sees document 1: {control} vs {}",
        l[docs.len() + 1]
    );
}

fn write_corpus(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for f in 0..3 {
        let mut text = String::new();
        for d in 0..(5 + f * 3) {
            let words = 3 + (d * 7 + f) % 11;
            for w in 0..words {
                text.push_str(&format!("word{}{} ", f, (d * 13 + w) % 17));
                if w % 5 == 4 {
                    text.push('\n');
                }
            }
            text.push_str("\n\n");
        }
        let path = dir.join(format!("part{f}.txt"));
        std::fs::write(&path, text).expect("writes");
        files.push(path);
    }
    files
}

#[test]
fn streamed_text_resumes_exactly_from_a_saved_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = write_corpus(dir.path());
    let open = || PackedText::new(files.clone(), Split::Train, None, 256, 2, 24, 5).expect("opens");
    let mut straight = open();
    let all: Vec<HostBatch> = (0..40)
        .map(|_| straight.next_batch().expect("batch"))
        .collect();
    let mut first = open();
    for batch in all.iter().take(17) {
        assert_eq!(
            &first.next_batch().expect("batch"),
            batch,
            "the same seed gives the same batches"
        );
    }
    let saved = serde_json::to_string(&first.state()).expect("serializes");
    let state: PackedTextState = serde_json::from_str(&saved).expect("parses");
    assert_eq!(state.position, 17);
    let mut resumed = open();
    resumed.restore(&state);
    for (p, batch) in all.iter().enumerate().skip(17) {
        assert_eq!(
            &resumed.next_batch().expect("batch"),
            batch,
            "batch {p} after resuming at 17"
        );
    }
    assert!(
        straight.state().epoch >= 1,
        "40 batches of 2 x 24 bytes pass over the corpus"
    );
    // Every row is a packing of the files' documents: each target is the
    // next input within its segment.
    for batch in &all {
        let (input, target, segment) = (
            ids(batch, INPUT_IDS),
            ids(batch, TARGET_LABELS),
            ids(batch, SEGMENT_IDS),
        );
        for r in 0..2 {
            for t in 0..23 {
                if segment[[r, t]] == segment[[r, t + 1]] && segment[[r, t]] > 0 {
                    assert_eq!(target[[r, t]], input[[r, t + 1]]);
                }
            }
        }
    }
    let first_batch = |seed| {
        PackedText::new(files.clone(), Split::Train, None, 256, 2, 24, seed)
            .expect("opens")
            .next_batch()
            .expect("batch")
    };
    assert!(
        (6..12).any(|seed| first_batch(seed) != all[0]),
        "other seeds read the files in other orders"
    );
}
