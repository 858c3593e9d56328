//! The printer's contract: parsing printed text gives back the tree that
//! was printed (spans aside), for the sample rules, for tricky hand-written
//! ones, and for randomly generated trees.

mod common;

use jingzhi_rules::ast::{
    Absence, Aggregate, Clause, ClauseKind, DurationLit, Expr, ExprKind, File, Ident, Label,
    ListItem, ListValue, Rings, Rule, Sequence, StrLit, WindowSpec,
};
use jingzhi_rules::parser::parse;
use jingzhi_rules::plan::{ArithOp, CmpOp};
use jingzhi_rules::print::print_file;
use jingzhi_rules::Span;

fn parse_clean(text: &str) -> File {
    let (file, diags) = parse(text, 0);
    assert!(diags.is_empty(), "{text}\n{diags:#?}");
    file
}

/// parse → print → parse gives the same tree, and printing is stable.
fn assert_round_trip(text: &str) {
    let mut first = parse_clean(text);
    let printed = print_file(&first);
    let mut second = parse_clean(&printed);
    assert_eq!(print_file(&second), printed, "printing is not stable");
    first.erase_spans();
    second.erase_spans();
    assert_eq!(
        first, second,
        "round trip changed the tree:\n{text}\n--- printed\n{printed}"
    );
}

#[test]
fn sample_rules_round_trip() {
    for file in common::examples() {
        assert_round_trip(&file.text);
    }
}

#[test]
fn diagnostics_inputs_that_parse_round_trip() {
    for path in common::files_in("tests/diagnostics", "rules") {
        let text = std::fs::read_to_string(&path).unwrap();
        let (_, diags) = parse(&text, 0);
        if diags.is_empty() {
            assert_round_trip(&text);
        }
    }
}

const TRICKY: &[&str] = &[
    // Precedence that needs parentheses, and some that does not.
    r#"rule p "t" { severity red group by cell
       when (a or b) and not (c or d) and -(a + b) * c > a - (b - c) / (d * 2) }"#,
    r#"rule p "t" { severity red group by cell when not not a or (not a) == b and --a < -(-a) }"#,
    r#"rule p "t" { severity red group by cell when (a < b) == (c > d) and (a in [1]) != false }"#,
    r#"rule p "t" { severity red group by cell when a * (b + c) >= (a + b) * c or ((a)) <= (((b))) }"#,
    // Numbers: exponents, tiny and huge magnitudes, negative list items.
    r#"rule n "t" { severity red group by cell
       when a > 1.5e3 and a < 1e300 and a != 0.00001234 and a in [-1, 2.5, -0.5e-7, 1e20,] }"#,
    // Strings: escapes, quotes, Chinese, control characters.
    r#"rule s "标题 \"引号\" \\ \t \n \u{1}" { severity red group by cell
       when count(sensor where kind in ["a\"b", "水\u{6C34}", "tab\there"]) over 1m > 0
       message "{{字面}} {cell} {count_sensor:.0}\n第二行" }"#,
    // Windows: canonical durations, tumbling, compound units.
    r#"rule w "t" { severity red group by cell
       let a = count(sensor) over 90s
       let b = sum(traffic.flow * 12 where flow > 0) over tumbling 1h30m
       let c = min(traffic.occupancy) over 1500ms
       when a > 0 and b > 0 and c > 0 }"#,
    // Fields spelled like keywords, qualified; Chinese names; any clause order.
    r#"rule 规则 "标题" { message "m" when 水位 > 0 let 水位 = max(incident.severity where incident.severity in [3, 4]) over 1d
       group by district severity blue }"#,
    // A long condition, broken at top-level `and`s.
    r#"rule long "t" { severity red group by cell
       let water = max(sensor.value where kind == "water_level") over 10m
       when water > 0.3 and avg(traffic.speed_kmh) over 10m < 15 and count(incident where kind in ["flood", "accident"]) over 30m >= 1 and (water > 1 or water < 0) }"#,
    // A long condition that is not an `and` chain stays on one line.
    r#"rule long_or "t" { severity red group by cell
       when avg(traffic.speed_kmh) over 10m < 15 or count(incident where kind in ["flood", "accident"]) over 30m >= 1 }"#,
    // Several rules, with comments (not kept) between.
    "# one\nrule a \"t\" { severity red group by cell when x > 1 }\n# two\nrule b \"t\" { severity red group by cell when x > 1 }\n",
    // An empty file.
    "",
    // Ladders, holds, hysteresis, sequences, absences, inhibition, labels,
    // with conditions long enough to be broken.
    r#"rule l "t" { severity red when water > 0.4 and count(incident where kind in ["flood", "accident"]) over 30m >= 1 and speed < 15
       severity orange when water > 0.25 severity blue group by cell
       when water > 0.1 and avg(traffic.speed_kmh) over 10m within 2 rings < 15 and count(incident) over 30m within 1 ring >= 1 after incident where kind == "flood" and incident.severity >= 3 within 15m
       clear when not absent(sensor where kind == "water_level") over 30m and water < 0.08 and count_distinct(incident.incident_id) over 1h < 2
       for 1m30s inhibited by a, b, 规则 labels { team: "防汛", 区域: "东\"城", } }"#,
    // A short sequence stays on the `when` line; `within 0 rings`; `last`.
    r#"rule s "t" { severity red group by cell
       when last(sensor.value) over 5m within 0 rings > 1 after sensor within 1m labels {} }"#,
    // A sequence's filter ending in an aggregate, with and without rings:
    // `within 15m` is the sequence's, `within 1 ring` the aggregate's.
    r#"rule f "t" { severity red group by cell
       when x > 1 after incident where count(incident) over 1m within 1 ring within 15m }"#,
    r#"rule g "t" { severity red group by cell
       when x > 1 after incident where x > max(incident.severity) over 1m within 15m }"#,
    // Fields spelled like the new reserved words, after their stream.
    r#"rule k "t" { severity red group by cell
       when count(incident where incident.for > incident.within and incident.clear == incident.rings) over 1m > 0 }"#,
];

#[test]
fn tricky_rules_round_trip() {
    for text in TRICKY {
        assert_round_trip(text);
    }
}

#[test]
fn ladder_entries_keep_their_when_on_their_line() {
    let file = parse_clean(TRICKY[12]);
    let printed = print_file(&file);
    assert!(
        printed.contains("\n  severity red when water > 0.4\n   and count(incident"),
        "{printed}"
    );
    assert!(
        printed.contains(
            "\n    after incident where kind == \"flood\" and incident.severity >= 3 within 15m\n"
        ),
        "{printed}"
    );
    assert!(
        printed.contains("\n  labels { team: \"防汛\", 区域: \"东\\\"城\" }\n"),
        "{printed}"
    );
    let short = print_file(&parse_clean(TRICKY[13]));
    assert!(
        short.contains("  when last(sensor.value) over 5m within 0 rings > 1 after sensor within 1m\n  labels {}\n"),
        "{short}"
    );
}

#[test]
fn long_conditions_are_broken_at_and() {
    let file = parse_clean(TRICKY[8]);
    let printed = print_file(&file);
    assert!(
        printed.contains("\n   and avg(traffic.speed_kmh) over 10m < 15\n"),
        "{printed}"
    );
    assert!(
        printed.contains("\n   and (water > 1 or water < 0)\n"),
        "{printed}"
    );
}

/// A small deterministic generator of random trees (xorshift).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn ident(&mut self) -> Ident {
        let name = self.pick(&[
            "water",
            "speed",
            "水位",
            "_x1",
            "sensor",
            "kind",
            "count_incident",
        ]);
        Ident {
            name: name.into(),
            span: Span::default(),
        }
    }

    fn number(&mut self) -> f64 {
        match self.below(5) {
            0 => self.below(1000) as f64,
            1 => self.below(1000) as f64 / 8.0,
            2 => 1e-9 * self.below(1000) as f64,
            3 => 1e18 * (1 + self.below(1000)) as f64,
            _ => f64::from_bits(self.next() >> 2).abs().min(1e300),
        }
    }

    fn string(&mut self) -> String {
        let pieces = [
            "a", "水", "\"", "\\", "\n", "\t", "{", "}", "\u{7}", " ", "é",
        ];
        (0..self.below(5)).map(|_| self.pick(&pieces)).collect()
    }

    fn leaf(&mut self) -> ExprKind {
        match self.below(6) {
            0 => ExprKind::Number(self.number()),
            1 => ExprKind::String(self.string()),
            2 => ExprKind::Bool(self.below(2) == 0),
            3 => ExprKind::Field {
                stream: self.ident(),
                field: Ident {
                    name: self
                        .pick(&["value", "severity", "kind", "speed_kmh"])
                        .into(),
                    span: Span::default(),
                },
            },
            _ => ExprKind::Name(self.ident()),
        }
    }

    fn expr(&mut self, depth: u32) -> Expr {
        let kind = if depth == 0 {
            self.leaf()
        } else {
            let sub = |g: &mut Gen| Box::new(g.expr(depth - 1));
            match self.below(10) {
                0 => ExprKind::Neg(sub(self)),
                1 => ExprKind::Not(sub(self)),
                2 => {
                    let op = [ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div]
                        [self.below(4) as usize];
                    ExprKind::Arith(op, sub(self), sub(self))
                }
                3 => {
                    let op = [
                        CmpOp::Eq,
                        CmpOp::Ne,
                        CmpOp::Lt,
                        CmpOp::Le,
                        CmpOp::Gt,
                        CmpOp::Ge,
                    ][self.below(6) as usize];
                    ExprKind::Compare(op, sub(self), sub(self))
                }
                4 => ExprKind::And(sub(self), sub(self)),
                5 => ExprKind::Or(sub(self), sub(self)),
                6 => {
                    let items = (0..self.below(4))
                        .map(|_| ListItem {
                            value: match self.below(3) {
                                0 => ListValue::Number(
                                    self.number() * if self.below(2) == 0 { -1.0 } else { 1.0 },
                                ),
                                1 => ListValue::String(self.string()),
                                _ => ListValue::Bool(self.below(2) == 0),
                            },
                            span: Span::default(),
                        })
                        .collect();
                    ExprKind::In(sub(self), items)
                }
                7 => ExprKind::Aggregate(Box::new(self.aggregate(depth - 1))),
                8 if self.below(2) == 0 => ExprKind::Absent(Box::new(Absence {
                    stream: self.ident(),
                    filter: (self.below(2) == 0).then(|| Box::new(self.expr(depth - 1))),
                    window: self.duration(),
                    span: Span::default(),
                })),
                _ => self.leaf(),
            }
        };
        Expr {
            kind,
            span: Span::default(),
        }
    }

    fn duration(&mut self) -> DurationLit {
        DurationLit {
            length: Some(self.below(100_000_000)),
            span: Span::default(),
        }
    }

    fn rings(&mut self) -> Option<Rings> {
        let count = match self.below(8) {
            0 => 0.0,
            1 => 1.0,
            2 => 2.0,
            3 => 5.0,
            4 => self.number(),
            _ => return None,
        };
        Some(Rings {
            count,
            number: Span::default(),
            span: Span::default(),
        })
    }

    fn sequence(&mut self) -> Sequence {
        Sequence {
            stream: self.ident(),
            filter: (self.below(2) == 0).then(|| Box::new(self.expr(3))),
            within: self.duration(),
            span: Span::default(),
        }
    }

    fn aggregate(&mut self, depth: u32) -> Aggregate {
        Aggregate {
            function: Ident {
                name: self
                    .pick(&["count", "max", "avg", "p95", "last", "count_distinct"])
                    .into(),
                span: Span::default(),
            },
            argument: Box::new(self.expr(depth)),
            filter: (self.below(2) == 0).then(|| Box::new(self.expr(depth))),
            window: WindowSpec {
                tumbling: self.below(2) == 0,
                length: Some(self.below(100_000_000)),
                span: Span::default(),
                every: (self.below(3) == 0).then(|| self.duration()),
            },
            rings: self.rings(),
            span: Span::default(),
        }
    }

    fn rule(&mut self) -> Rule {
        let mut clauses = Vec::new();
        for _ in 0..self.below(8) {
            let kind = match self.below(11) {
                0 => ClauseKind::Severity {
                    level: self.ident(),
                    condition: None,
                },
                1 => ClauseKind::Severity {
                    level: self.ident(),
                    condition: Some(self.expr(4)),
                },
                2 => ClauseKind::GroupBy(self.ident()),
                3 => ClauseKind::Let {
                    name: self.ident(),
                    value: self.aggregate(2),
                },
                4 => ClauseKind::Message(StrLit {
                    value: self.string(),
                    span: Span::default(),
                }),
                5 => ClauseKind::Clear(self.expr(4)),
                6 => ClauseKind::Hold(self.duration()),
                7 => {
                    ClauseKind::InhibitedBy((0..1 + self.below(3)).map(|_| self.ident()).collect())
                }
                8 => ClauseKind::Labels(
                    (0..self.below(4))
                        .map(|_| Label {
                            key: self.ident(),
                            value: StrLit {
                                value: self.string(),
                                span: Span::default(),
                            },
                        })
                        .collect(),
                ),
                _ => ClauseKind::When {
                    condition: self.expr(5),
                    after: (self.below(3) == 0).then(|| self.sequence()),
                },
            };
            clauses.push(Clause {
                kind,
                keyword: Span::default(),
                span: Span::default(),
            });
        }
        Rule {
            span: Span::default(),
            keyword: Span::default(),
            name: self.ident(),
            title: StrLit {
                value: self.string(),
                span: Span::default(),
            },
            clauses,
        }
    }
}

#[test]
fn random_trees_round_trip() {
    let mut gen = Gen(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let file = File {
            rules: (0..1 + gen.below(3)).map(|_| gen.rule()).collect(),
            abandoned: Vec::new(),
        };
        let printed = print_file(&file);
        let (mut parsed, diags) = parse(&printed, 0);
        assert!(diags.is_empty(), "{printed}\n{diags:#?}");
        parsed.erase_spans();
        assert_eq!(parsed, file, "\n{printed}");
    }
}
