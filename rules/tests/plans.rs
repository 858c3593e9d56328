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
    }
}

fn text(s: &str) -> TemplatePart {
    TemplatePart::Text(s.into())
}

fn var(var: TemplateVar, precision: Option<u8>) -> TemplatePart {
    TemplatePart::Var { var, precision }
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
    };
    let speed = Term {
        name: "speed".into(),
        agg: AggFn::Avg,
        stream: StreamKind::Traffic,
        value: Some(Expr::Field(Field::SpeedKmh)),
        filter: None,
        window: Window::Sliding(600_000),
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
