//! The README's library example is the code of `examples/readme.rs`, which `cargo test`
//! compiles: the two must show the same lines, or the README documents an API that is not
//! there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The non-blank lines of `text` between the line that contains `start` and the next line
/// that contains `end`, with runs of whitespace made one space: the README aligns the
/// comments, rustfmt does not.
fn lines_between(text: &str, start: &str, end: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|line| !line.contains(start));
    assert!(lines.next().is_some(), "no line with {start:?}");
    let block: Vec<String> = lines
        .take_while(|line| !line.contains(end))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect();
    assert!(!block.is_empty(), "nothing between {start:?} and {end:?}");
    block
}

#[test]
fn the_readme_library_example_is_the_compiled_example() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(manifest.join("../README.md")).unwrap();
    let library = readme
        .split("## The signer library")
        .nth(1)
        .expect("the README has a section on the signer library");
    let shown = lines_between(library, "```rust", "```");
    let example = std::fs::read_to_string(manifest.join("examples/readme.rs")).unwrap();
    let compiled = lines_between(&example, "// README begin", "// README end");
    assert_eq!(shown, compiled);
}
