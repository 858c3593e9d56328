//! The three streams and the fields a rule may read from each.
//!
//! This table is the single source of truth for the checker (which fields
//! exist, of what type), for the documentation, and for reading a field out
//! of an [`Event`](crate::event::Event).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the three input streams.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Incident,
    Traffic,
    Sensor,
}

impl StreamKind {
    pub const ALL: [StreamKind; 3] = [
        StreamKind::Incident,
        StreamKind::Traffic,
        StreamKind::Sensor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Incident => "incident",
            StreamKind::Traffic => "traffic",
            StreamKind::Sensor => "sensor",
        }
    }

    pub fn from_name(name: &str) -> Option<StreamKind> {
        match name {
            "incident" => Some(StreamKind::Incident),
            "traffic" => Some(StreamKind::Traffic),
            "sensor" => Some(StreamKind::Sensor),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The fields a rule may use on this stream.
    pub fn fields(self) -> &'static [FieldDef] {
        match self {
            StreamKind::Incident => INCIDENT_FIELDS,
            StreamKind::Traffic => TRAFFIC_FIELDS,
            StreamKind::Sensor => SENSOR_FIELDS,
        }
    }

    pub fn field(self, name: &str) -> Option<&'static FieldDef> {
        self.fields().iter().find(|f| f.name == name)
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of a field or expression.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    Number,
    String,
    Bool,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Number => "number",
            Type::String => "string",
            Type::Bool => "boolean",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A readable field of an event. Each stream has its own; `Cell` is common.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    IncidentId,
    IncidentKind,
    IncidentSeverity,
    IncidentSegmentId,
    SegmentId,
    SpeedKmh,
    Flow,
    Occupancy,
    SensorId,
    SensorKind,
    Value,
    Unit,
}

/// What the schema says about one field.
#[derive(Debug)]
pub struct FieldDef {
    pub name: &'static str,
    pub field: Field,
    pub ty: Type,
    /// Whether every accepted event has it (optional fields read as missing).
    pub required: bool,
    pub doc: &'static str,
}

const INCIDENT_FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "kind",
        field: Field::IncidentKind,
        ty: Type::String,
        required: true,
        doc: "what happened: accident, flood, fire, gas_leak, crowd, collapse, …",
    },
    FieldDef {
        name: "severity",
        field: Field::IncidentSeverity,
        ty: Type::Number,
        required: false,
        doc: "reported severity, 1 (minor) to 4 (most severe)",
    },
    FieldDef {
        name: "segment_id",
        field: Field::IncidentSegmentId,
        ty: Type::String,
        required: false,
        doc: "road segment the incident is on, if any",
    },
    FieldDef {
        name: "incident_id",
        field: Field::IncidentId,
        ty: Type::String,
        required: true,
        doc: "the reporting system's id of the incident",
    },
];

const TRAFFIC_FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "speed_kmh",
        field: Field::SpeedKmh,
        ty: Type::Number,
        required: true,
        doc: "average speed on the segment in the interval, km/h",
    },
    FieldDef {
        name: "flow",
        field: Field::Flow,
        ty: Type::Number,
        required: false,
        doc: "vehicles counted in the interval",
    },
    FieldDef {
        name: "occupancy",
        field: Field::Occupancy,
        ty: Type::Number,
        required: false,
        doc: "detector occupancy in percent (0–100)",
    },
    FieldDef {
        name: "segment_id",
        field: Field::SegmentId,
        ty: Type::String,
        required: true,
        doc: "road segment id (一码)",
    },
];

const SENSOR_FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "kind",
        field: Field::SensorKind,
        ty: Type::String,
        required: true,
        doc: "what is measured: water_level, rainfall, pm25, gas_lel, temperature, …",
    },
    FieldDef {
        name: "value",
        field: Field::Value,
        ty: Type::Number,
        required: true,
        doc: "the reading, in the sensor's unit",
    },
    FieldDef {
        name: "unit",
        field: Field::Unit,
        ty: Type::String,
        required: false,
        doc: "unit of the reading (m, mm, ug/m3, %LEL, …)",
    },
    FieldDef {
        name: "sensor_id",
        field: Field::SensorId,
        ty: Type::String,
        required: true,
        doc: "sensor id (一码)",
    },
];

impl Field {
    pub fn stream(self) -> StreamKind {
        match self {
            Field::IncidentId
            | Field::IncidentKind
            | Field::IncidentSeverity
            | Field::IncidentSegmentId => StreamKind::Incident,
            Field::SegmentId | Field::SpeedKmh | Field::Flow | Field::Occupancy => {
                StreamKind::Traffic
            }
            Field::SensorId | Field::SensorKind | Field::Value | Field::Unit => StreamKind::Sensor,
        }
    }

    pub fn def(self) -> &'static FieldDef {
        self.stream()
            .fields()
            .iter()
            .find(|d| d.field == self)
            .expect("every field is listed in its stream's table")
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    pub fn ty(self) -> Type {
        self.def().ty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips_through_its_table() {
        for s in StreamKind::ALL {
            for d in s.fields() {
                assert_eq!(d.field.stream(), s);
                assert_eq!(s.field(d.name).map(|f| f.field), Some(d.field));
                assert_eq!(d.field.name(), d.name);
            }
        }
    }
}
