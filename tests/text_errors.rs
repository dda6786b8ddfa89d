//! Bad text inputs are refused naming the file or directory at fault, before anything is
//! compiled: training a tokenizer on a directory or a binary file, `--data` of an empty
//! directory, `--tokenizer` of JSON that is not a tokenizer.json.

use axle::text::{TextInput, TextTokenizer};

#[test]
fn tokenizer_training_names_a_directory_or_a_binary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let message = TextTokenizer::train_bpe(&[tmp.path().to_path_buf()], 300)
        .err()
        .expect("a directory is refused")
        .to_string();
    assert!(
        message.contains(&tmp.path().display().to_string()) && message.contains("directory"),
        "{message}"
    );
    let binary = tmp.path().join("weights.bin");
    std::fs::write(&binary, [0x66, 0x6f, 0xff, 0xfe, 0x00]).unwrap();
    let message = TextTokenizer::train_bpe(std::slice::from_ref(&binary), 300)
        .err()
        .expect("a binary file is refused")
        .to_string();
    assert!(
        message.contains(&binary.display().to_string()) && message.contains("offset 2"),
        "{message}"
    );
}

#[test]
fn empty_data_directory_and_non_tokenizer_json_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let not_tokenizer = tmp.path().join("config.json");
    std::fs::write(&not_tokenizer, r#"{"hidden_size": 64}"#).unwrap();
    let message = TextInput::open(&empty, &not_tokenizer, 512, 2, 16)
        .err()
        .expect("an empty directory is refused")
        .to_string();
    assert!(message.contains(&empty.display().to_string()), "{message}");
    let message = TextTokenizer::load(&not_tokenizer)
        .err()
        .expect("JSON that is not a tokenizer is refused")
        .to_string();
    assert!(
        message.contains(&not_tokenizer.display().to_string())
            && message.contains("not a Hugging Face tokenizer.json"),
        "{message}"
    );
}
