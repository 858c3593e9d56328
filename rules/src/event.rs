//! Events of the three streams, and reading them from NDJSON lines with an
//! error that names the field and the problem.
//!
//! A line is a JSON object with a `"stream"` field (`incident`, `traffic`,
//! `sensor`), a `ts` (epoch milliseconds or RFC 3339) and a location: `cell`,
//! or `lon` and `lat`, or — for sensors and traffic — just the entity id,
//! resolved through reference data. Fields not in the schema are ignored so
//! that producers can send richer records.

use crate::schema::{Field, StreamKind};
use crate::smallstr::SmallStr;
use crate::space::{CellId, Grid};
use crate::sym::Sym;
use crate::time::{format_rfc3339, parse_rfc3339, Millis};
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Earliest accepted event time: 2000-01-01T00:00:00Z.
pub const MIN_TS: Millis = 946_684_800_000;

/// Where an event happened, as the producer said it.
#[derive(Clone, Debug, PartialEq)]
pub enum Location {
    /// A grid cell, given directly or mapped from lon/lat.
    Cell(CellId),
    /// Only the sensor id; its cell comes from reference data.
    Sensor(Sym),
    /// Only the segment id; its cell comes from reference data.
    Segment(Sym),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub incident_id: Box<str>,
    pub kind: Sym,
    pub severity: Option<u8>,
    /// The road segment the incident is on, if the reporter knows it.
    pub segment_id: Option<SmallStr>,
    /// Free text; may hold personal data and is never used by rules.
    pub description: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    pub segment_id: SmallStr,
    pub speed_kmh: f64,
    pub flow: Option<f64>,
    pub occupancy: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sensor {
    pub sensor_id: SmallStr,
    pub kind: Sym,
    pub value: f64,
    pub unit: Option<Sym>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Incident(Incident),
    Traffic(Traffic),
    Sensor(Sensor),
}

/// One accepted event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub ts: Millis,
    pub location: Location,
    pub body: Body,
}

/// A field's value as a rule sees it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Missing,
    Number(f64),
    Sym(Sym),
    Text(&'a str),
}

impl Event {
    pub fn stream(&self) -> StreamKind {
        match self.body {
            Body::Incident(_) => StreamKind::Incident,
            Body::Traffic(_) => StreamKind::Traffic,
            Body::Sensor(_) => StreamKind::Sensor,
        }
    }

    /// Reads a field; a field of another stream reads as missing.
    pub fn field(&self, field: Field) -> FieldValue<'_> {
        use FieldValue::*;
        match (&self.body, field) {
            (Body::Incident(i), Field::IncidentId) => Text(&i.incident_id),
            (Body::Incident(i), Field::IncidentKind) => Sym(i.kind),
            (Body::Incident(i), Field::IncidentSegmentId) => {
                i.segment_id.as_ref().map_or(Missing, |s| Text(s))
            }
            (Body::Incident(i), Field::IncidentSeverity) => {
                i.severity.map_or(Missing, |s| Number(f64::from(s)))
            }
            (Body::Traffic(t), Field::SegmentId) => Text(&t.segment_id),
            (Body::Traffic(t), Field::SpeedKmh) => Number(t.speed_kmh),
            (Body::Traffic(t), Field::Flow) => t.flow.map_or(Missing, Number),
            (Body::Traffic(t), Field::Occupancy) => t.occupancy.map_or(Missing, Number),
            (Body::Sensor(s), Field::SensorId) => Text(&s.sensor_id),
            (Body::Sensor(s), Field::SensorKind) => Sym(s.kind),
            (Body::Sensor(s), Field::Value) => Number(s.value),
            (Body::Sensor(s), Field::Unit) => s.unit.map_or(Missing, Sym),
            _ => Missing,
        }
    }

    /// Writes the event as one NDJSON line (with the trailing newline), in
    /// the same shape it is read in.
    pub fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        let stream = self.stream().name();
        let _ = write!(out, "{{\"stream\":\"{stream}\",\"ts\":{}", self.ts);
        match &self.location {
            Location::Cell(c) => {
                let _ = write!(out, ",\"cell\":{c}");
            }
            Location::Sensor(_) | Location::Segment(_) => {}
        }
        let s = |out: &mut String, k: &str, v: &str| {
            let _ = write!(out, ",\"{k}\":");
            json_string(out, v);
        };
        match &self.body {
            Body::Incident(i) => {
                s(out, "incident_id", &i.incident_id);
                s(out, "kind", i.kind.as_str());
                if let Some(sev) = i.severity {
                    let _ = write!(out, ",\"severity\":{sev}");
                }
                if let Some(seg) = &i.segment_id {
                    s(out, "segment_id", seg);
                }
                if let Some(d) = &i.description {
                    s(out, "description", d);
                }
            }
            Body::Traffic(t) => {
                s(out, "segment_id", t.segment_id.as_str());
                let _ = write!(out, ",\"speed_kmh\":{}", t.speed_kmh);
                if let Some(f) = t.flow {
                    let _ = write!(out, ",\"flow\":{f}");
                }
                if let Some(o) = t.occupancy {
                    let _ = write!(out, ",\"occupancy\":{o}");
                }
            }
            Body::Sensor(x) => {
                s(out, "sensor_id", x.sensor_id.as_str());
                s(out, "kind", x.kind.as_str());
                let _ = write!(out, ",\"value\":{}", x.value);
                if let Some(u) = x.unit {
                    s(out, "unit", u.as_str());
                }
            }
        }
        out.push_str("}\n");
    }
}

/// Appends `text` as a JSON string literal.
pub fn json_string(out: &mut String, text: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Why a line was rejected; the metric label `reason`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    InvalidJson,
    UnknownStream,
    MissingField,
    WrongType,
    OutOfRange,
    BadTimestamp,
    BadLocation,
}

impl RejectReason {
    pub const ALL: [RejectReason; 7] = [
        RejectReason::InvalidJson,
        RejectReason::UnknownStream,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::OutOfRange,
        RejectReason::BadTimestamp,
        RejectReason::BadLocation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::UnknownStream => "unknown_stream",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadLocation => "bad_location",
        }
    }
}

/// A rejected line: which field, what is wrong with it.
#[derive(Clone, Debug, PartialEq)]
pub struct LineError {
    /// The stream, when the line got far enough to say.
    pub stream: Option<StreamKind>,
    pub field: Option<&'static str>,
    pub reason: RejectReason,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What the parser needs to know about the world.
#[derive(Clone, Debug)]
pub struct ParseContext {
    pub grid: Grid,
    /// Events later than this are refused as absurd (wall clock plus a margin).
    pub max_ts: Millis,
}

impl ParseContext {
    /// A context that accepts times up to `max_future_ms` past `now`.
    pub fn new(grid: Grid, now: Millis, max_future_ms: Millis) -> ParseContext {
        ParseContext {
            grid,
            max_ts: now.saturating_add(max_future_ms),
        }
    }
}

/// A JSON scalar as read, before the schema says what it should be.
#[derive(Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    Int(u64),
    NegInt,
    Float(f64),
    Str(Cow<'a, str>),
    Bool,
    Null,
    Array,
    Object,
}

impl Scalar<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Scalar::Int(_) | Scalar::NegInt | Scalar::Float(_) => "a number",
            Scalar::Str(_) => "a string",
            Scalar::Bool => "a boolean",
            Scalar::Null => "null",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(if v >= 0 {
                    Scalar::Int(v as u64)
                } else {
                    Scalar::NegInt
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Array)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Object)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(crate) struct RawEvent<'a> {
    #[serde(borrow)]
    pub(crate) stream: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) ts: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) cell: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) lon: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) lat: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) incident_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) severity: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) description: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) segment_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) speed_kmh: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) flow: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) occupancy: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) sensor_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) value: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub(crate) unit: Option<Scalar<'a>>,
}

struct Checker {
    stream: Option<StreamKind>,
}

impl Checker {
    fn err(&self, field: &'static str, reason: RejectReason, message: String) -> LineError {
        LineError {
            stream: self.stream,
            field: Some(field),
            reason,
            message: format!("field `{field}`: {message}"),
        }
    }

    fn required<'s, 'a>(
        &self,
        field: &'static str,
        v: &'s Option<Scalar<'a>>,
    ) -> Result<&'s Scalar<'a>, LineError> {
        match v {
            None | Some(Scalar::Null) => Err(self.err(
                field,
                RejectReason::MissingField,
                match self.stream {
                    Some(s) => format!("is required for {s} events"),
                    None => "is required".to_string(),
                },
            )),
            Some(x) => Ok(x),
        }
    }

    fn number(&self, field: &'static str, v: &Scalar) -> Result<f64, LineError> {
        let x = match v {
            Scalar::Int(i) => *i as f64,
            Scalar::Float(f) => *f,
            Scalar::NegInt => {
                return Err(self.err(
                    field,
                    RejectReason::OutOfRange,
                    "must not be negative".into(),
                ))
            }
            other => {
                return Err(self.err(
                    field,
                    RejectReason::WrongType,
                    format!("expected a number, got {}", other.describe()),
                ))
            }
        };
        if !x.is_finite() {
            return Err(self.err(
                field,
                RejectReason::OutOfRange,
                "is not a finite number".into(),
            ));
        }
        Ok(x)
    }

    /// A signed finite number (sensor values may be below zero).
    fn signed_number(&self, field: &'static str, v: &Scalar) -> Result<f64, LineError> {
        match v {
            Scalar::NegInt => Err(self.err(
                field,
                RejectReason::WrongType,
                "negative integers beyond 64 bits are not supported".into(),
            )),
            other => self.number(field, other),
        }
    }

    fn opt_number(
        &self,
        field: &'static str,
        v: &Option<Scalar>,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Option<f64>, LineError> {
        match v {
            None | Some(Scalar::Null) => Ok(None),
            Some(x) => {
                let n = self.number(field, x)?;
                if !range.contains(&n) {
                    return Err(self.err(
                        field,
                        RejectReason::OutOfRange,
                        format!("{n} is outside {}..={}", range.start(), range.end()),
                    ));
                }
                Ok(Some(n))
            }
        }
    }

    fn text<'s>(&self, field: &'static str, v: &'s Scalar) -> Result<&'s str, LineError> {
        match v {
            Scalar::Str(s) if s.is_empty() => {
                Err(self.err(field, RejectReason::OutOfRange, "must not be empty".into()))
            }
            Scalar::Str(s) => Ok(s),
            other => Err(self.err(
                field,
                RejectReason::WrongType,
                format!("expected a string, got {}", other.describe()),
            )),
        }
    }

    fn sym(&self, field: &'static str, v: &Scalar) -> Result<Sym, LineError> {
        let text = self.text(field, v)?;
        Sym::intern(text).map_err(|e| self.err(field, RejectReason::OutOfRange, e.to_string()))
    }

    /// An entity id: kept as text; interned only where it is a location.
    fn id(&self, field: &'static str, v: &Scalar) -> Result<SmallStr, LineError> {
        let text = self.text(field, v)?;
        if text.len() > crate::sym::MAX_SYMBOL_LEN {
            return Err(self.err(
                field,
                RejectReason::OutOfRange,
                format!("is longer than {} bytes", crate::sym::MAX_SYMBOL_LEN),
            ));
        }
        Ok(SmallStr::new(text))
    }

    fn opt_sym(&self, field: &'static str, v: &Option<Scalar>) -> Result<Option<Sym>, LineError> {
        match v {
            None | Some(Scalar::Null) => Ok(None),
            Some(x) => self.sym(field, x).map(Some),
        }
    }
}

/// Longest free-text description kept, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// Parses one NDJSON line into an event.
pub fn parse_line(line: &[u8], ctx: &ParseContext) -> Result<Event, LineError> {
    let invalid = |message: String| LineError {
        stream: None,
        field: None,
        reason: RejectReason::InvalidJson,
        message,
    };
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("expected a JSON object".to_string()));
    }
    // Most lines are flat objects of plain strings and numbers; the scanner
    // reads those directly and leaves anything else to serde_json, which
    // also words the errors. Both produce the same raw form.
    let raw: RawEvent = match crate::scan::scan_flat(line) {
        Some(raw) => raw,
        None => serde_json::from_slice(line).map_err(|e| {
            invalid(format!(
                "invalid JSON at column {}: {}",
                e.column(),
                strip_position(&e.to_string())
            ))
        })?,
    };
    validate(raw, ctx)
}

/// Checks a raw line against the schema and builds the event.
fn validate(raw: RawEvent, ctx: &ParseContext) -> Result<Event, LineError> {
    let mut c = Checker { stream: None };
    let stream_text = c.text("stream", c.required("stream", &raw.stream)?)?;
    let stream = StreamKind::from_name(stream_text).ok_or_else(|| LineError {
        stream: None,
        field: Some("stream"),
        reason: RejectReason::UnknownStream,
        message: format!(
            "field `stream`: unknown stream `{}` (expected incident, traffic or sensor)",
            truncate(stream_text, 40)
        ),
    })?;
    c.stream = Some(stream);

    let ts = match c.required("ts", &raw.ts)? {
        Scalar::Int(ms) => *ms,
        Scalar::Float(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 1e16 => *f as u64,
        Scalar::Float(_) | Scalar::NegInt => {
            return Err(c.err(
                "ts",
                RejectReason::BadTimestamp,
                "must be whole milliseconds since 1970 or an RFC 3339 string".into(),
            ))
        }
        Scalar::Str(s) => parse_rfc3339(s).map_err(|m| {
            c.err(
                "ts",
                RejectReason::BadTimestamp,
                format!("`{}` {m}", truncate(s, 40)),
            )
        })?,
        other => {
            return Err(c.err(
                "ts",
                RejectReason::WrongType,
                format!(
                    "expected milliseconds or an RFC 3339 string, got {}",
                    other.describe()
                ),
            ))
        }
    };
    if ts < MIN_TS {
        return Err(c.err(
            "ts",
            RejectReason::BadTimestamp,
            format!(
                "{} is before 2000-01-01; is it in seconds instead of milliseconds?",
                ts
            ),
        ));
    }
    if ts > ctx.max_ts {
        return Err(c.err(
            "ts",
            RejectReason::BadTimestamp,
            format!("{} is too far in the future", format_rfc3339(ts)),
        ));
    }

    let cell = match &raw.cell {
        None | Some(Scalar::Null) => None,
        Some(Scalar::Int(n)) if *n < u64::from(ctx.grid.cell_count()) => Some(*n as CellId),
        Some(Scalar::Int(n)) => {
            return Err(c.err(
                "cell",
                RejectReason::BadLocation,
                format!(
                    "{n} is not a cell of the grid (0..{})",
                    ctx.grid.cell_count()
                ),
            ))
        }
        Some(other) => {
            return Err(c.err(
                "cell",
                RejectReason::WrongType,
                format!("expected a cell number, got {}", other.describe()),
            ))
        }
    };
    let point = match (&raw.lon, &raw.lat) {
        (None | Some(Scalar::Null), None | Some(Scalar::Null)) => None,
        (Some(lon), Some(lat)) if !matches!(lon, Scalar::Null) && !matches!(lat, Scalar::Null) => {
            let lon = c.signed_number("lon", lon)?;
            let lat = c.signed_number("lat", lat)?;
            Some((lon, lat))
        }
        (None | Some(Scalar::Null), _) => {
            return Err(c.err(
                "lon",
                RejectReason::MissingField,
                "is required with `lat`".into(),
            ))
        }
        (_, _) => {
            return Err(c.err(
                "lat",
                RejectReason::MissingField,
                "is required with `lon`".into(),
            ))
        }
    };
    let located = match (cell, point) {
        (Some(cell), _) => Some(cell),
        (None, Some((lon, lat))) => Some(ctx.grid.cell_of(lon, lat).ok_or_else(|| {
            c.err(
                "lon",
                RejectReason::BadLocation,
                format!("point ({lon}, {lat}) is outside the city grid"),
            )
        })?),
        (None, None) => None,
    };

    let (body, location) = match stream {
        StreamKind::Incident => {
            let incident_id =
                c.text("incident_id", c.required("incident_id", &raw.incident_id)?)?;
            if incident_id.len() > 256 {
                return Err(c.err(
                    "incident_id",
                    RejectReason::OutOfRange,
                    "is longer than 256 bytes".into(),
                ));
            }
            let kind = c.sym("kind", c.required("kind", &raw.kind)?)?;
            let severity = c.opt_number("severity", &raw.severity, 1.0..=4.0)?;
            if let Some(s) = severity {
                if s.fract() != 0.0 {
                    return Err(c.err(
                        "severity",
                        RejectReason::OutOfRange,
                        "must be 1, 2, 3 or 4".into(),
                    ));
                }
            }
            let segment_id = match &raw.segment_id {
                None | Some(Scalar::Null) => None,
                Some(v) => Some(c.id("segment_id", v)?),
            };
            let description = match &raw.description {
                None | Some(Scalar::Null) => None,
                Some(Scalar::Str(s)) => Some(truncate(s, MAX_DESCRIPTION_LEN).into()),
                Some(other) => {
                    return Err(c.err(
                        "description",
                        RejectReason::WrongType,
                        format!("expected a string, got {}", other.describe()),
                    ))
                }
            };
            let location = Location::Cell(located.ok_or_else(|| {
                c.err(
                    "cell",
                    RejectReason::MissingField,
                    "an incident needs a location: `cell`, or `lon` and `lat`".into(),
                )
            })?);
            (
                Body::Incident(Incident {
                    incident_id: incident_id.into(),
                    kind,
                    severity: severity.map(|s| s as u8),
                    segment_id,
                    description,
                }),
                location,
            )
        }
        StreamKind::Traffic => {
            let segment_id = c.id("segment_id", c.required("segment_id", &raw.segment_id)?)?;
            let speed_kmh = c.number("speed_kmh", c.required("speed_kmh", &raw.speed_kmh)?)?;
            if speed_kmh > 400.0 {
                return Err(c.err(
                    "speed_kmh",
                    RejectReason::OutOfRange,
                    format!("{speed_kmh} km/h is not a road speed"),
                ));
            }
            let flow = c.opt_number("flow", &raw.flow, 0.0..=1e6)?;
            let occupancy = c.opt_number("occupancy", &raw.occupancy, 0.0..=100.0)?;
            let location = match located {
                Some(cell) => Location::Cell(cell),
                None => Location::Segment(
                    c.sym("segment_id", c.required("segment_id", &raw.segment_id)?)?,
                ),
            };
            (
                Body::Traffic(Traffic {
                    segment_id,
                    speed_kmh,
                    flow,
                    occupancy,
                }),
                location,
            )
        }
        StreamKind::Sensor => {
            let sensor_id = c.id("sensor_id", c.required("sensor_id", &raw.sensor_id)?)?;
            let kind = c.sym("kind", c.required("kind", &raw.kind)?)?;
            let value = c.signed_number("value", c.required("value", &raw.value)?)?;
            let unit = c.opt_sym("unit", &raw.unit)?;
            let location = match located {
                Some(cell) => Location::Cell(cell),
                None => {
                    Location::Sensor(c.sym("sensor_id", c.required("sensor_id", &raw.sensor_id)?)?)
                }
            };
            (
                Body::Sensor(Sensor {
                    sensor_id,
                    kind,
                    value,
                    unit,
                }),
                location,
            )
        }
    };
    Ok(Event { ts, location, body })
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Outcome of parsing an NDJSON body.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    pub events: Vec<Event>,
    /// (1-based line number, error)
    pub rejected: Vec<(usize, LineError)>,
}

/// Parses every non-blank line of an NDJSON body; good lines are kept
/// whatever happens to their neighbours.
pub fn parse_ndjson(body: &[u8], ctx: &ParseContext) -> ParsedBatch {
    let mut out = ParsedBatch {
        events: Vec::with_capacity(body.len() / 96 + 1),
        rejected: Vec::new(),
    };
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line, ctx) {
            Ok(e) => out.events.push(e),
            Err(e) => out.rejected.push((i + 1, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        ParseContext::new(Grid::default(), 1_800_000_000_000, 86_400_000)
    }

    fn parse(s: &str) -> Result<Event, LineError> {
        parse_line(s.as_bytes(), &ctx())
    }

    #[test]
    fn reads_each_stream() {
        let e = parse(r#"{"stream":"sensor","ts":1767225600000,"sensor_id":"s1","kind":"water_level","cell":42,"value":0.31}"#).unwrap();
        assert_eq!(e.ts, 1_767_225_600_000);
        assert_eq!(e.location, Location::Cell(42));
        assert_eq!(e.field(Field::Value), FieldValue::Number(0.31));
        let e = parse(r#"{"stream":"traffic","ts":"2026-01-01T08:00:00+08:00","segment_id":"g7","speed_kmh":12.5}"#).unwrap();
        assert_eq!(e.ts, 1_767_225_600_000);
        assert_eq!(e.location, Location::Segment(Sym::intern("g7").unwrap()));
        assert_eq!(e.field(Field::SegmentId), FieldValue::Text("g7"));
        let e = parse(r#"{"stream":"incident","ts":1767225600000,"incident_id":"i1","kind":"flood","lon":116.4,"lat":39.9,"description":"积水"}"#).unwrap();
        assert!(matches!(e.location, Location::Cell(_)));
    }

    #[test]
    fn round_trips_through_json() {
        let line = r#"{"stream":"traffic","ts":1767225600000,"cell":7,"segment_id":"g7","speed_kmh":12.5,"flow":30}"#;
        let e = parse(line).unwrap();
        let mut out = String::new();
        e.write_json(&mut out);
        assert_eq!(parse(out.trim_end()).unwrap(), e);
    }

    #[test]
    fn errors_name_field_and_problem() {
        let cases = [
            (
                r#"{"ts":1767225600000}"#,
                "stream",
                RejectReason::MissingField,
            ),
            (
                r#"{"stream":"weather","ts":1767225600000}"#,
                "stream",
                RejectReason::UnknownStream,
            ),
            (
                r#"{"stream":"sensor","ts":1767225600000,"kind":"x","cell":1,"value":1}"#,
                "sensor_id",
                RejectReason::MissingField,
            ),
            (
                r#"{"stream":"sensor","ts":1767225600000,"sensor_id":"s","kind":"x","cell":1,"value":"high"}"#,
                "value",
                RejectReason::WrongType,
            ),
            (
                r#"{"stream":"sensor","ts":17672256,"sensor_id":"s","kind":"x","cell":1,"value":1}"#,
                "ts",
                RejectReason::BadTimestamp,
            ),
            (
                r#"{"stream":"sensor","ts":99999999999999,"sensor_id":"s","kind":"x","cell":1,"value":1}"#,
                "ts",
                RejectReason::BadTimestamp,
            ),
            (
                r#"{"stream":"sensor","ts":1767225600000,"sensor_id":"s","kind":"x","cell":100000,"value":1}"#,
                "cell",
                RejectReason::BadLocation,
            ),
            (
                r#"{"stream":"incident","ts":1767225600000,"incident_id":"i","kind":"fire"}"#,
                "cell",
                RejectReason::MissingField,
            ),
            (
                r#"{"stream":"traffic","ts":1767225600000,"segment_id":"g","speed_kmh":-3}"#,
                "speed_kmh",
                RejectReason::OutOfRange,
            ),
        ];
        for (line, field, reason) in cases {
            let e = parse(line).expect_err(line);
            assert_eq!(
                (e.field, e.reason),
                (Some(field), reason),
                "{line}: {}",
                e.message
            );
            assert!(e.message.contains(field), "{}", e.message);
        }
        let e = parse(r#"{"stream":"sensor","ts":1767225600000,"value":1e999}"#).unwrap_err();
        assert_eq!(e.reason, RejectReason::InvalidJson);
        let e = parse("[1,2]").unwrap_err();
        assert_eq!(e.message, "expected a JSON object");
    }

    #[test]
    fn good_lines_survive_bad_neighbours() {
        let body = b"{\"stream\":\"sensor\",\"ts\":1767225600000,\"sensor_id\":\"s\",\"kind\":\"x\",\"cell\":1,\"value\":1}\nnot json\n\n{\"stream\":\"sensor\",\"ts\":1767225600000,\"sensor_id\":\"s\",\"kind\":\"x\",\"cell\":2,\"value\":2}\n";
        let b = parse_ndjson(body, &ctx());
        assert_eq!(b.events.len(), 2);
        assert_eq!(b.rejected.len(), 1);
        assert_eq!(b.rejected[0].0, 2);
    }
}
