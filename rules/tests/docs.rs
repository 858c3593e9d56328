//! `docs/rules.md` teaches by example: every rule it shows in a ```rules
//! block must compile with no diagnostic, and print back to the same tree.

use jingzhi_rules::lang::{compile, render_diagnostics, CheckOptions, SourceFile};
use jingzhi_rules::parser::parse;
use jingzhi_rules::print::print_file;

const DOC: &str = include_str!("../../docs/rules.md");

/// The ```rules blocks of the document, with the line each starts on.
fn rule_blocks() -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in DOC.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```rules" => current = Some((i + 2, String::new())),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```rules block");
    blocks
}

#[test]
fn every_rule_in_the_docs_compiles_cleanly() {
    let blocks = rule_blocks();
    assert!(
        blocks.len() >= 10,
        "found only {} rule blocks",
        blocks.len()
    );
    for (line, text) in &blocks {
        let files = [SourceFile {
            name: format!("docs/rules.md:{line}"),
            text: text.clone(),
        }];
        let compiled = compile(&files, &CheckOptions::default());
        assert!(
            compiled.diagnostics.is_empty(),
            "{}",
            render_diagnostics(&compiled.diagnostics, &files)
        );
        assert!(!compiled.plans.is_empty());
        let (mut first, _) = parse(text, 0);
        let (mut again, diags) = parse(&print_file(&first), 0);
        assert!(diags.is_empty());
        first.erase_spans();
        again.erase_spans();
        assert_eq!(first, again);
    }
}

/// The reserved words the grammar lists are the lexer's.
#[test]
fn reserved_words_are_documented() {
    let listed = DOC
        .split("Reserved words: ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .unwrap()
        .replace(['`', '\n'], " ");
    let mut words: Vec<&str> = listed.split_whitespace().collect();
    words.sort_unstable();
    let mut keywords: Vec<&str> = jingzhi_rules::lexer::Keyword::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    keywords.sort_unstable();
    assert_eq!(words, keywords);
}
