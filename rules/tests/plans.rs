//! The checker's output for the two rules of `docs/rules.md`, in full, and
//! the naming, ordering and resolution rules the docs state.

use jingzhi_rules::lang::{compile, render_diagnostics, CheckOptions, Compiled, SourceFile};
use jingzhi_rules::plan::{
    AggFn, CmpOp, Expr, GroupBy, Literal, RulePlan, Severity, TemplatePart, TemplateVar, Term,
    Window,
};
use jingzhi_rules::schema::{Field, StreamKind};
use jingzhi_rules::Sym;

const FIRST_RULE: &str = r#"# Water over 25 cm at an underpass.
rule underpass_water "下穿桥积水" {
  severity orange
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.25
  message "网格 {cell} 积水 {water:.2} m"
}
"#;

const CORRELATING_RULE: &str = r#"rule underpass_flooding "下穿桥积水影响通行" {
  severity red
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  let speed = avg(traffic.speed_kmh) over 10m
  when water > 0.3
   and speed < 15
   and count(incident where kind in ["flood", "accident"]) over 30m >= 1
  message "网格 {cell} 积水 {water} m,车速 {speed:.1} km/h,{count_incident} 起相关事件"
}
"#;

fn compile_one(name: &str, text: &str) -> Compiled {
    let files = [SourceFile {
        name: name.into(),
        text: text.into(),
    }];
    let compiled = compile(&files, &CheckOptions::default());
    assert!(
        !compiled.has_errors(),
        "{}",
        render_diagnostics(&compiled.diagnostics, &files)
    );
    compiled
}

fn plan_of(text: &str) -> RulePlan {
    let compiled = compile_one("t.rules", text);
    assert_eq!(compiled.plans.len(), 1);
    compiled.plans.into_iter().next().unwrap()
}

fn sym(s: &str) -> Sym {
    Sym::intern(s).unwrap()
}

fn num(n: f64) -> Box<Expr> {
    Box::new(Expr::Literal(Literal::Number(n)))
}

fn cmp(op: CmpOp, a: Expr, b: Box<Expr>) -> Expr {
    Expr::Compare(op, Box::new(a), b)
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::And(Box::new(a), Box::new(b))
}

fn water_term(window: Window) -> Term {
    Term {
        name: "water".into(),
        agg: AggFn::Max,
        stream: StreamKind::Sensor,
        value: Some(Expr::Field(Field::Value)),
        filter: Some(cmp(
            CmpOp::Eq,
            Expr::Field(Field::SensorKind),
            Box::new(Expr::Literal(Literal::String(sym("water_level")))),
        )),
        window,
        rings: 0,
        hidden: false,
        every: None,
    }
}

fn text(s: &str) -> TemplatePart {
    TemplatePart::Text(s.into())
}

fn var(var: TemplateVar, precision: Option<u8>) -> TemplatePart {
    TemplatePart::Var { var, precision }
}

#[test]
fn the_docs_show_these_rules() {
    let doc = include_str!("../../docs/rules.md");
    assert!(doc.contains(FIRST_RULE));
    assert!(doc.contains(CORRELATING_RULE));
}

#[test]
fn first_rule_of_the_docs() {
    let compiled = compile_one("flood.rules", FIRST_RULE);
    assert!(compiled.diagnostics.is_empty());
    let plan = &compiled.plans[0];
    let expected = RulePlan {
        name: "underpass_water".into(),
        title: "下穿桥积水".into(),
        severity: Severity::Orange,
        group_by: GroupBy::Cell,
        terms: vec![water_term(Window::Sliding(600_000))],
        condition: cmp(CmpOp::Gt, Expr::Term(0), num(0.25)),
        severity_ladder: vec![],
        clear: None,
        hold_ms: 0,
        after: None,
        inhibited_by: vec![],
        labels: vec![],
        message: vec![
            text("网格 "),
            var(TemplateVar::Key, None),
            text(" 积水 "),
            var(TemplateVar::Term(0), Some(2)),
            text(" m"),
        ],
        origin: "flood.rules:2".into(),
        source: FIRST_RULE
            .trim_start_matches("# Water over 25 cm at an underpass.\n")
            .trim_end()
            .into(),
    };
    assert_eq!(plan, &expected);
}

#[test]
fn correlating_rule_of_the_docs() {
    let plan = plan_of(CORRELATING_RULE);
    let count_incident = Term {
        name: "count_incident".into(),
        agg: AggFn::Count,
        stream: StreamKind::Incident,
        value: None,
        filter: Some(Expr::In(
            Box::new(Expr::Field(Field::IncidentKind)),
            vec![
                Literal::String(sym("flood")),
                Literal::String(sym("accident")),
            ],
        )),
        window: Window::Sliding(1_800_000),
        rings: 0,
        hidden: false,
        every: None,
    };
    let speed = Term {
        name: "speed".into(),
        agg: AggFn::Avg,
        stream: StreamKind::Traffic,
        value: Some(Expr::Field(Field::SpeedKmh)),
        filter: None,
        window: Window::Sliding(600_000),
        rings: 0,
        hidden: false,
        every: None,
    };
    assert_eq!(
        plan.terms,
        vec![water_term(Window::Sliding(600_000)), speed, count_incident]
    );
    // Left-associative `and`: ((water > 0.3 and speed < 15) and count >= 1).
    let expected = and(
        and(
            cmp(CmpOp::Gt, Expr::Term(0), num(0.3)),
            cmp(CmpOp::Lt, Expr::Term(1), num(15.0)),
        ),
        cmp(CmpOp::Ge, Expr::Term(2), num(1.0)),
    );
    assert_eq!(plan.condition, expected);
    assert_eq!(
        plan.message,
        vec![
            text("网格 "),
            var(TemplateVar::Key, None),
            text(" 积水 "),
            var(TemplateVar::Term(0), None),
            text(" m,车速 "),
            var(TemplateVar::Term(1), Some(1)),
            text(" km/h,"),
            var(TemplateVar::Term(2), None),
            text(" 起相关事件"),
        ]
    );
    assert_eq!(plan.severity, Severity::Red);
    assert_eq!(plan.origin, "t.rules:1");
    assert_eq!(plan.source, CORRELATING_RULE.trim_end());
}

#[test]
fn inline_names_get_numbered_in_order_of_appearance() {
    let plan = plan_of(
        r#"rule r "t" {
  severity blue
  group by district
  let max_value = max(sensor.value) over 1m
  when max_value > 1
   and max(sensor.value * 2) over 5m > 1
   and max(sensor.value) over tumbling 10m > max_value_2
   and count(traffic) over 1m >= count(traffic.flow) over 1m
   and count(traffic where flow > 3) over 1m >= 0
}"#,
    );
    let names: Vec<&str> = plan.terms.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "max_value",
            "max_value_2",
            "max_value_3",
            "count_traffic",
            "count_flow",
            "count_traffic_2"
        ]
    );
    assert_eq!(plan.terms[2].window, Window::Tumbling(600_000));
    // count(STREAM.FIELD) counts events where the field is present.
    assert_eq!(plan.terms[4].value, Some(Expr::Field(Field::Flow)));
    assert_eq!(plan.terms[3].value, None);
    // The default message is the title.
    assert_eq!(plan.message, vec![text("t")]);
    assert_eq!(plan.group_by, GroupBy::District);
}

#[test]
fn message_names_and_escapes() {
    let plan = plan_of(
        r#"rule r "标题" {
  severity yellow
  group by district
  let n = count(incident) over 10m
  when n >= 1
  message "{{{district}}} {key} {district_name} {rule} {title} {severity} {n:.0} }}"
}"#,
    );
    assert_eq!(
        plan.message,
        vec![
            text("{"),
            var(TemplateVar::Key, None),
            text("} "),
            var(TemplateVar::Key, None),
            text(" "),
            var(TemplateVar::DistrictName, None),
            text(" "),
            var(TemplateVar::Rule, None),
            text(" "),
            var(TemplateVar::Title, None),
            text(" "),
            var(TemplateVar::Severity, None),
            text(" "),
            var(TemplateVar::Term(0), Some(0)),
            text(" }"),
        ]
    );
}

#[test]
fn reserved_word_fields_and_negative_list_items() {
    let plan = plan_of(
        r#"rule r "t" {
  severity red
  group by cell
  when max(incident.severity where incident.severity in [3, 4, -1]) over 1h >= 3
    or not count(sensor where unit != "m" and -value < -1.5e1) over 2h30m > 0
}"#,
    );
    assert_eq!(plan.terms[0].name, "max_severity");
    assert_eq!(
        plan.terms[0].filter,
        Some(Expr::In(
            Box::new(Expr::Field(Field::IncidentSeverity)),
            vec![
                Literal::Number(3.0),
                Literal::Number(4.0),
                Literal::Number(-1.0)
            ]
        ))
    );
    assert_eq!(plan.terms[1].window, Window::Sliding(9_000_000));
}

#[test]
fn rules_with_errors_are_left_out_and_the_others_kept() {
    let files = [
        SourceFile {
            name: "a.rules".into(),
            text: "rule good \"t\" { severity red group by cell when count(sensor) over 1m > 0 }\n\
                   rule bad \"t\" { severity red group by cell when count(sensr) over 1m > 0 }"
                .into(),
        },
        SourceFile {
            name: "b.rules".into(),
            text:
                "rule good \"again\" { severity red group by cell when count(sensor) over 1m > 0 }"
                    .into(),
        },
    ];
    let compiled = compile(&files, &CheckOptions::default());
    let codes: Vec<&str> = compiled.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E010", "E015"]);
    let e015 = &compiled.diagnostics[1];
    assert_eq!(e015.file, 1);
    assert_eq!(e015.notes, ["first defined at a.rules:1:6"]);
    let names: Vec<&str> = compiled.plans.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["good"]);
    assert_eq!(compiled.plans[0].title, "t");
}

#[test]
fn min_window_follows_the_options() {
    let files = [SourceFile {
        name: "w.rules".into(),
        text: "rule w \"t\" { severity red group by cell when count(sensor) over 5s > 0 }".into(),
    }];
    let fine = compile(
        &files,
        &CheckOptions {
            min_window_ms: 5000,
        },
    );
    assert!(fine.diagnostics.is_empty());
    let strict = compile(
        &files,
        &CheckOptions {
            min_window_ms: 10_000,
        },
    );
    assert_eq!(strict.diagnostics[0].code, "E014");
    assert!(strict.plans.is_empty());
}

#[test]
fn count_of_a_field_counts_events_that_have_it() {
    use jingzhi_rules::event::{Body, Event, Location, Sensor};
    use jingzhi_rules::plan::term_input;
    let plan = plan_of(
        r#"rule units "t" {
  severity blue
  group by cell
  when count(sensor.unit) over 1m >= 1 and count(sensor.value) over 1m >= 1
}"#,
    );
    let reading = |unit: Option<&str>| Event {
        ts: 1_767_225_600_000,
        location: Location::Cell(1),
        body: Body::Sensor(Sensor {
            sensor_id: "s1".into(),
            kind: sym("water_level"),
            value: 0.5,
            unit: unit.map(sym),
        }),
    };
    let (unit, value) = (&plan.terms[0], &plan.terms[1]);
    assert_eq!(term_input(unit, &reading(Some("m"))), Some(1.0));
    assert_eq!(term_input(unit, &reading(None)), None);
    assert!(term_input(value, &reading(None)).is_some());
}

// ---- the constructs of the tutorial: what each desugars to ----

fn ge(a: Expr, n: f64) -> Expr {
    cmp(CmpOp::Ge, a, num(n))
}

fn count_flood(window: Window) -> Term {
    Term {
        name: String::new(),
        agg: AggFn::Count,
        stream: StreamKind::Incident,
        value: None,
        filter: Some(cmp(
            CmpOp::Eq,
            Expr::Field(Field::IncidentKind),
            Box::new(Expr::Literal(Literal::String(sym("flood")))),
        )),
        window,
        rings: 0,
        hidden: true,
        every: None,
    }
}

#[test]
fn severity_ladder_in_written_order_with_a_default() {
    let plan = plan_of(
        r#"rule w "t" {
  severity red when water >= 0.4
  severity orange when water >= 0.25 or max(sensor.value) over 1m > 9
  severity blue
  group by cell
  let water = max(sensor.value where kind == "water_level") over 5m
  when water >= 0.1
}"#,
    );
    assert_eq!(plan.severity, Severity::Blue);
    let levels: Vec<Severity> = plan.severity_ladder.iter().map(|(s, _)| *s).collect();
    assert_eq!(levels, [Severity::Red, Severity::Orange]);
    assert_eq!(
        plan.severity_ladder[0].1,
        cmp(CmpOp::Ge, Expr::Term(0), num(0.4))
    );
    // An inline aggregate in a ladder condition is a term like any other.
    assert_eq!(plan.terms[1].name, "max_value");
    assert!(!plan.terms[1].hidden);
    assert_eq!(plan.severity_for(&[Some(0.5), None]), Severity::Red);
    assert_eq!(plan.severity_for(&[Some(0.3), None]), Severity::Orange);
    assert_eq!(
        plan.severity_for(&[Some(0.2), Some(10.0)]),
        Severity::Orange
    );
    assert_eq!(plan.severity_for(&[Some(0.2), None]), Severity::Blue);
    assert!(!plan.is_temporal());
}

#[test]
fn a_when_on_its_own_line_is_the_rule_condition() {
    let plan = plan_of(
        "rule w \"t\" {\n  severity red\n  when count(incident) over 1m >= 1\n  group by cell\n}",
    );
    assert!(plan.severity_ladder.is_empty());
    assert_eq!(plan.severity, Severity::Red);
    // On the same line, it is a ladder entry, and the rule lacks its `when`.
    let files = [SourceFile {
        name: "t.rules".into(),
        text: "rule w \"t\" { severity red when count(incident) over 1m >= 1 group by cell }"
            .into(),
    }];
    let compiled = compile(&files, &CheckOptions::default());
    let codes: Vec<&str> = compiled.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E018", "E018"]);
}

#[test]
fn group_keys_rings_and_new_aggregates() {
    let plan = plan_of(
        r#"rule g "t" {
  severity red
  group by cell
  let near = max(sensor.value where kind == "gas_lel") over 5m within 1 ring
  let wide = count(incident) over 5m within 2 rings
  let here = count(incident) over 5m within 0 rings
  when near >= 25 and wide + here >= 1
   and count_distinct(incident.kind) over 10m >= 2
   and last(sensor.value) over 10m > 1
}"#,
    );
    let rings: Vec<u32> = plan.terms.iter().map(|t| t.rings).collect();
    assert_eq!(rings, [1, 2, 0, 0, 0]);
    assert_eq!(plan.terms[3].name, "count_distinct_kind");
    assert_eq!(plan.terms[3].agg, AggFn::CountDistinct);
    assert_eq!(plan.terms[3].value, Some(Expr::Field(Field::IncidentKind)));
    assert_eq!(plan.terms[4].name, "last_value");
    assert_eq!(plan.terms[4].agg, AggFn::Last);

    let segment = plan_of(
        r#"rule s "t" {
  severity red
  group by segment
  let accidents = count_distinct(incident.incident_id where kind == "accident") over 10m
  when accidents >= 2 and avg(traffic.speed_kmh) over 10m < 20
  message "{segment} {key} {district_name} {accidents}"
}"#,
    );
    assert_eq!(segment.group_by, GroupBy::Segment);
    assert_eq!(segment.message[0], var(TemplateVar::Key, None));
    assert_eq!(segment.message[2], var(TemplateVar::Key, None));
    assert_eq!(segment.message[4], var(TemplateVar::DistrictName, None));

    let sensor = plan_of(
        r#"rule s "t" {
  severity blue
  group by sensor
  when count(sensor where value > 1) over 10m >= 1
  message "{sensor}"
}"#,
    );
    assert_eq!(sensor.group_by, GroupBy::Sensor);
    assert_eq!(sensor.message, [var(TemplateVar::Key, None)]);
}

#[test]
fn hold_clear_labels_and_inhibition() {
    let files = [
        SourceFile {
            name: "a.rules".into(),
            text: r#"rule wet "t" {
  severity red
  group by district
  when count(sensor) over 1m >= 1
}"#
            .into(),
        },
        SourceFile {
            name: "b.rules".into(),
            text: r#"rule slow "t" {
  severity yellow
  group by cell
  let speed = avg(traffic.speed_kmh) over 5m
  when speed < 20
  for 1m30s
  clear when speed > 25
  inhibited by wet, other
  labels { team: "交通", 区域: "东城", }
}
rule other "t" { severity red group by cell when count(incident) over 1m >= 1 }"#
                .into(),
        },
    ];
    let compiled = compile(&files, &CheckOptions::default());
    assert!(
        compiled.diagnostics.is_empty(),
        "{}",
        render_diagnostics(&compiled.diagnostics, &files)
    );
    let plan = &compiled.plans[1];
    assert_eq!(plan.hold_ms, 90_000);
    assert_eq!(plan.clear, Some(cmp(CmpOp::Gt, Expr::Term(0), num(25.0))));
    assert_eq!(plan.inhibited_by, ["wet", "other"]);
    assert_eq!(
        plan.labels,
        [
            ("team".to_string(), "交通".to_string()),
            ("区域".to_string(), "东城".to_string())
        ]
    );
    assert!(plan.is_temporal());
    assert!(plan.terms.iter().all(|t| !t.hidden));
}

#[test]
fn a_sequence_adds_a_hidden_count_after_the_visible_terms() {
    let plan = plan_of(
        r#"rule seq "t" {
  severity red
  group by cell
  let speed = avg(traffic.speed_kmh) over 5m
  when speed < 10 and count(incident) over 5m >= 0 after incident where kind == "flood" within 15m
  message "{speed} {count_incident}"
}"#,
    );
    let names: Vec<&str> = plan.terms.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["speed", "count_incident", "_after"]);
    assert_eq!(plan.after, Some(2));
    assert_eq!(
        plan.terms[2],
        Term {
            name: "_after".into(),
            ..count_flood(Window::Sliding(900_000))
        }
    );
    assert!(plan.is_temporal());
}

#[test]
fn absence_desugars_to_two_hidden_counts() {
    let plan = plan_of(
        r#"rule gone "t" {
  severity blue
  group by cell
  let n = count(incident) over 5m
  when absent(incident where kind == "flood") over 30m and n >= 0
  clear when not absent(incident where kind == "flood") over 10m
  message "{n}"
}"#,
    );
    let names: Vec<&str> = plan.terms.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "n",
            "_absent_1_recent",
            "_absent_1_seen",
            "_absent_2_recent",
            "_absent_2_seen"
        ]
    );
    assert_eq!(
        plan.terms[1],
        Term {
            name: "_absent_1_recent".into(),
            ..count_flood(Window::Sliding(1_800_000))
        }
    );
    assert_eq!(
        plan.terms[2],
        Term {
            name: "_absent_1_seen".into(),
            ..count_flood(Window::Sliding(86_400_000))
        }
    );
    assert_eq!(plan.terms[3].window, Window::Sliding(600_000));
    let absent = |recent: usize, seen: usize| {
        and(
            cmp(CmpOp::Eq, Expr::Term(recent), num(0.0)),
            ge(Expr::Term(seen), 1.0),
        )
    };
    assert_eq!(plan.condition, and(absent(1, 2), ge(Expr::Term(0), 0.0)));
    assert_eq!(plan.clear, Some(Expr::Not(Box::new(absent(3, 4)))));
    // Seen in the last day, silent in the last 30 minutes.
    assert_eq!(
        plan.condition
            .eval_terms(&[Some(0.0), Some(0.0), Some(3.0), Some(0.0), Some(3.0)])
            .truth(),
        Some(true)
    );
}

#[test]
fn hidden_terms_are_never_offered_by_name() {
    let files = [SourceFile {
        name: "h.rules".into(),
        text: r#"rule h "t" {
  severity blue
  group by sensor
  when absent(sensor) over 30m and _absent_1_recent == 0
  message "{_after} {_absent_1_seen}"
}"#
        .into(),
    }];
    let compiled = compile(&files, &CheckOptions::default());
    let rendered = render_diagnostics(&compiled.diagnostics, &files);
    let codes: Vec<&str> = compiled.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E016", "E022", "E022"], "{rendered}");
    assert!(!rendered.contains("note: this rule's values"), "{rendered}");
    assert!(
        rendered.contains("the message can use: sensor, key, district_name"),
        "{rendered}"
    );
}

#[test]
fn inhibited_by_a_rule_with_a_syntax_error_is_not_an_unknown_rule() {
    let files = [
        SourceFile {
            name: "a.rules".into(),
            text: "rule flooding \"t\" { severity red group by cell when x > }".into(),
        },
        SourceFile {
            name: "b.rules".into(),
            text: "rule slow \"t\" { severity red group by cell when count(traffic) over 1m > 0 inhibited by flooding }"
                .into(),
        },
    ];
    let compiled = compile(&files, &CheckOptions::default());
    let codes: Vec<&str> = compiled.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E001"]);
}
