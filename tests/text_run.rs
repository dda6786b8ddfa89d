//! A text run end to end: a BPE trained on the repository's docs, `axle
//! train --tokenizer` on those docs (packed rows with segment ids and
//! positions), a resume that continues the text stream exactly (losses
//! bitwise equal to the straight run's), bits per byte among the eval
//! metrics, and `axle generate` from the checkpoint with the recorded
//! tokenizer; a tokenizer retrained at the recorded path is then refused by
//! generation and by a resume, naming the file and both CRC-32s.

use axle::checkpoint::Checkpointer;
use axle::generate::{GenerateOptions, ModelSource, Sampling, run as generate_run};
use axle::run::{RunOptions, train};
use axle::text::TextTokenizer;
use std::path::{Path, PathBuf};

/// The repository's Markdown docs copied into `dir/text/`, and a BPE of
/// 512 tokens trained on them at `dir/tokenizer.json`.
fn corpus(dir: &Path) -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = dir.join("text");
    std::fs::create_dir_all(&text).expect("text dir");
    let mut files = Vec::new();
    for name in ["README.md", "docs/design.md", "docs/learner.md"] {
        let to = text.join(name.replace('/', "_"));
        std::fs::copy(root.join(name), &to).expect("copies a doc");
        files.push(to);
    }
    let tokenizer = dir.join("tokenizer.json");
    TextTokenizer::train_bpe(&files, 512)
        .expect("trains")
        .save(&tokenizer)
        .expect("saves");
    (text, tokenizer)
}

fn run(dir: &Path, steps: u64, resume: bool) -> RunOptions {
    RunOptions {
        overrides: vec![
            "decoder.dim=64".into(),
            "decoder.transformer.num_layers=1".into(),
            "decoder.transformer.layers.0.feed_forward.hidden_dim=128".into(),
            "decoder.vocab_size=512".into(),
        ],
        mesh: Some("data=1".into()),
        cpu_devices: Some(1),
        batch_size: Some(4),
        seq_len: Some(32),
        seed: Some(3),
        steps,
        resume,
        eval_every: 6,
        eval_batches: 2,
        checkpoint_every: 2,
        checkpoint_dir: Some(dir.join("ckpt")),
        ..RunOptions::default()
    }
}

#[test]
fn a_text_run_resumes_its_stream_exactly_and_generates() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (text, tokenizer) = corpus(tmp.path());
    let with_text = |o: RunOptions| RunOptions {
        data: Some(text.clone()),
        tokenizer: Some(tokenizer.clone()),
        ..o
    };
    let straight = train(&with_text(run(&tmp.path().join("a"), 6, false)), |_| {}).expect("trains");
    let split = tmp.path().join("b");
    train(&with_text(run(&split, 4, false)), |_| {}).expect("trains");
    // Lose the step-4 checkpoint: the resume starts at step 2, from the
    // text stream's recorded state, with only the directory given.
    let ckpt = Checkpointer::new(split.join("ckpt"), 1);
    std::fs::remove_dir_all(ckpt.latest().expect("lists").expect("a checkpoint")).expect("removes");
    let resumed = train(&run(&split, 6, true), |_| {}).expect("resumes");
    assert_eq!(resumed.losses, straight.losses[2..], "bitwise");
    let bpb = straight.eval_metrics["bits_per_byte"];
    let loss = f64::from(straight.eval_losses.last().expect("an eval").1);
    eprintln!("eval loss {loss:.4} nats/token, {bpb:.4} bits/byte");
    // Closed form: bits per byte is the cross-entropy in bits over the bytes
    // per token; a BPE of 512 on English packs more than one byte per token.
    assert!(
        bpb > 0.0 && bpb < loss / std::f64::consts::LN_2,
        "{bpb} vs {loss}"
    );

    let options = GenerateOptions {
        source: ModelSource::Checkpoint(split.join("ckpt")),
        prompts: vec![
            "The trainer".into(),
            "axle trains deep learning models".into(),
        ],
        prompt_ids: Vec::new(),
        max_new_tokens: 5,
        eos_ids: None,
        sampling: Sampling::greedy(),
        tokenizer: None,
        mesh: None,
        xla_options: vec!["xla_cpu_enable_fast_math=false".into()],
        plugin: "cpu".into(),
        cpu_devices: Some(1),
    };
    let report = generate_run(&options).expect("generates");
    let reference = TextTokenizer::load(&tokenizer).expect("loads");
    for ((ids, text), prompt) in report
        .generation
        .tokens
        .iter()
        .zip(&report.texts)
        .zip(&report.prompt_ids)
    {
        assert_eq!(ids.len(), 5);
        assert_eq!(
            text,
            &reference.decode(ids).expect("decodes"),
            "the recorded tokenizer decodes"
        );
        assert!(!prompt.is_empty());
    }
    assert_eq!(
        report.prompt_ids[0],
        reference.encode("The trainer").expect("encodes")
    );

    // Retrain the tokenizer in place (another vocabulary size, so other bytes).
    let recorded = reference.crc32().expect("a loaded tokenizer has a CRC-32");
    let files: Vec<PathBuf> = std::fs::read_dir(&text)
        .expect("lists")
        .map(|e| e.expect("entry").path())
        .collect();
    let mut retrained = TextTokenizer::train_bpe(&files, 400).expect("trains");
    retrained.save(&tokenizer).expect("saves");
    let found = retrained.crc32().expect("a saved tokenizer has a CRC-32");
    assert_ne!(recorded, found);
    let refused = |message: String| {
        for part in [
            tokenizer.display().to_string(),
            recorded.clone(),
            found.clone(),
        ] {
            assert!(message.contains(&part), "{message} lacks {part}");
        }
    };
    refused(
        generate_run(&options)
            .expect_err("a changed tokenizer is refused")
            .to_string(),
    );
    refused(
        train(&run(&split, 8, true), |_| {})
            .expect_err("a changed tokenizer is refused")
            .to_string(),
    );
}
