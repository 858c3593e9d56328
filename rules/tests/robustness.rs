//! The front end must never panic, whatever it is fed: random bytes,
//! token soup, every truncation and many mutations of the sample rules.
//! Every diagnostic must point inside its file, on character boundaries,
//! and render.

mod common;

use jingzhi_rules::lang::{
    compile, diagnostics_json, render_diagnostics, CheckOptions, SourceFile,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Compiles `text` and checks what comes out is well-formed.
fn survive(text: &str) {
    let files = [SourceFile {
        name: "fuzz.rules".into(),
        text: text.into(),
    }];
    let compiled = compile(&files, &CheckOptions::default());
    for d in &compiled.diagnostics {
        let (start, end) = (d.span.start as usize, d.span.end as usize);
        assert!(
            start <= end && end <= text.len(),
            "{d:?} outside the text of length {}",
            text.len()
        );
        assert!(
            text.is_char_boundary(start) && text.is_char_boundary(end),
            "{d:?} splits a character in {text:?}"
        );
        assert_eq!(d.file, 0);
    }
    let _ = render_diagnostics(&compiled.diagnostics, &files);
    let _ = diagnostics_json(&compiled.diagnostics, &files);
    if !compiled.has_errors() {
        for plan in &compiled.plans {
            assert!(text.contains(&plan.source));
        }
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..3000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        survive(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn token_soup() {
    let vocabulary = [
        "rule",
        "severity",
        "group",
        "by",
        "let",
        "when",
        "message",
        "where",
        "over",
        "tumbling",
        "and",
        "or",
        "not",
        "in",
        "true",
        "false",
        "count",
        "max",
        "avg",
        "sensor",
        "traffic",
        "incident",
        ".",
        "value",
        "kind",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        "=",
        "==",
        "!=",
        "<",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "10m",
        "0s",
        "1.5",
        "1e999",
        "\"a\"",
        "\"{x\"",
        "\"\\q\"",
        "\"",
        "red",
        "cell",
        "district",
        "水位",
        "，",
        "#",
        "\n",
        "x",
        "_",
        "\u{feff}",
        "\t",
        "\"{{}}\"",
        "\"{count_sensor:.2}\"",
        "“",
        "”",
        "&&",
        "！",
        "for",
        "clear",
        "after",
        "within",
        "absent",
        "labels",
        "inhibited",
        "ring",
        "rings",
        ":",
        "：",
        "1",
        "segment",
        "last",
        "count_distinct",
        "\"防汛\"",
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..5000 {
        let n = rng.below(60);
        let text: Vec<&str> = (0..n)
            .map(|_| vocabulary[rng.below(vocabulary.len())])
            .collect();
        survive(&text.join(" "));
        survive(&text.concat());
    }
}

#[test]
fn truncations_and_mutations_of_the_samples() {
    let mut texts: Vec<String> = common::examples().into_iter().map(|f| f.text).collect();
    for path in common::files_in("tests/diagnostics", "rules") {
        texts.push(std::fs::read_to_string(path).unwrap());
    }
    let mut rng = Rng(0x0bad_cafe_0000_0001);
    for text in &texts {
        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for &cut in &boundaries {
            survive(&text[..cut]);
            survive(&text[cut..]);
        }
        for _ in 0..300 {
            let mut mutated = text.clone();
            let at = boundaries[rng.below(boundaries.len())];
            match rng.below(3) {
                0 => {
                    let end = mutated[at..]
                        .chars()
                        .next()
                        .map_or(at, |c| at + c.len_utf8());
                    mutated.replace_range(at..end, "");
                }
                1 => mutated.insert_str(
                    at,
                    ["{", "}", "\"", "(", ")", "-", "not ", "rule ", "，", "\n"][rng.below(10)],
                ),
                _ => {
                    let other = boundaries[rng.below(boundaries.len())];
                    let (a, b) = (at.min(other), at.max(other));
                    let piece = mutated[a..b].to_string();
                    mutated.insert_str(b, &piece);
                }
            }
            survive(&mutated);
        }
    }
}

#[test]
fn hostile_shapes() {
    survive(&"(".repeat(100_000));
    survive(&format!(
        "rule r \"t\" {{ when {} }}",
        "not ".repeat(50_000)
    ));
    survive(&format!(
        "rule r \"t\" {{ when x{} }}",
        " and x".repeat(50_000)
    ));
    survive(&format!(
        "rule r \"t\" {{ when count(sensor where {}) over 1m > 0 }}",
        "-".repeat(50_000)
    ));
    survive(&format!(
        "rule r \"t\" {{ message \"{}\" }}",
        "{".repeat(10_000)
    ));
    survive(&"\"".repeat(10_001));
    survive(&"9".repeat(10_000));
    survive(&format!("{}m", "9".repeat(100)));
    survive("rule r \"t\" { severity red group by cell when count(sensor) over 99999999999999999999d > 0 }");
    survive(&format!("rule r \"t\" {{ severity red group by cell when count(sensor where kind == \"{}\") over 1m > 0 }}", "x".repeat(1000)));
    survive("rule r \"\\u{D800}\\u{}\\u{1234567}\\u{zz}\\u\" {}");
    // The new constructs, repeated and nested past any sensible size.
    survive(&format!(
        "rule r \"t\" {{ {} severity red group by cell when x > 1 }}",
        "severity red when absent(sensor) over 1m\n".repeat(5_000)
    ));
    survive(&format!(
        "rule r \"t\" {{ severity red group by cell when x > 1 inhibited by {} }}",
        vec!["r"; 1_000].join(",\n")
    ));
    survive(&format!(
        "rule r \"t\" {{ severity red group by cell when x > 1 labels {{ {} }} }}",
        (0..5_000)
            .map(|i| format!("k{i}: \"v\", "))
            .collect::<String>()
    ));
    survive(&format!(
        "rule r \"t\" {{ severity red group by cell when count(sensor) over 1m within {} rings > 0 }}",
        "9".repeat(400)
    ));
    survive(&format!(
        "rule r \"t\" {{ severity red group by sensor when {}absent(sensor) over 1m{} }}",
        "(".repeat(200),
        ")".repeat(200)
    ));
    survive("rule r \"t\" { severity red group by cell when x > 1 after sensor where absent(sensor) over 1m within 1m }");
}

#[test]
fn unreadable_files_are_diagnostics() {
    let dir = std::env::temp_dir().join(format!("jingzhi-rules-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("latin1.rules");
    std::fs::write(&bad, b"rule r \"caf\xe9\" {}").unwrap();
    let missing = dir.join("missing.rules");
    let good = dir.join("good.rules");
    std::fs::write(
        &good,
        "rule g \"t\" { severity red group by cell when count(sensor) over 1m > 0 }",
    )
    .unwrap();
    let (compiled, sources) = jingzhi_rules::lang::check_files(
        &[bad.clone(), missing.clone(), good],
        &CheckOptions::default(),
    );
    let codes: Vec<(&str, usize)> = compiled
        .diagnostics
        .iter()
        .map(|d| (d.code, d.file))
        .collect();
    assert_eq!(codes, [("E000", 0), ("E000", 1)]);
    assert_eq!(compiled.plans.len(), 1);
    let d = &compiled.diagnostics[0];
    assert!(sources[0].text.is_char_boundary(d.span.end as usize));
    let rendered = render_diagnostics(&compiled.diagnostics, &sources);
    assert!(
        rendered.contains("latin1.rules:1:12: error[E000]: file is not valid UTF-8"),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!("{}: error[E000]: cannot read", missing.display())),
        "{rendered}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
