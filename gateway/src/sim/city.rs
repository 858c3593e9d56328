//! The simulated cities: the sixteen districts of Beijing on a grid (cells
//! assigned by centre-in-polygon from the embedded boundaries), and the
//! sensors, road segments and venues the simulator reports from, placed
//! densely in the six urban districts and sparsely outside them.
//!
//! Two cities share this recipe and differ in scale ([`CityPlan`]): the
//! default city ([`beijing_city`]), a plausible Beijing of about 2,000
//! sources on the default 100 × 100 grid of 1.8 km cells, and the city at
//! full scale ([`full_scale_beijing`]), about 50,000 sources on a grid of
//! 500 m cells. `docs/reference-data.md` documents both and where the
//! full-scale counts come from.
//!
//! Well-known places (underpasses that flood, national air-quality stations,
//! stadiums and stations where crowds gather) sit at their real coordinates;
//! the rest are drawn from a seeded generator, so one seed is one city.

use super::rng::{Rng, WeightedTable};
use jingzhi_rules::space::{
    assign_cells_by_centre, district_polygons, CellAssignment, CellId, District, Grid, Polygons,
    Reference, ReferenceFile, SegmentRef, SensorRef,
};
use jingzhi_rules::sym::Sym;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Beijing's district boundaries (16 districts; properties name, name_en,
/// adcode), compiled in so the simulator needs no files.
const BEIJING_DISTRICTS_GEOJSON: &str = crate::city::BEIJING_DISTRICTS;

/// The six central districts (城六区), where most sensors and roads are.
const URBAN_DISTRICTS: [&str; 6] = ["东城区", "西城区", "朝阳区", "海淀区", "丰台区", "石景山区"];
/// New towns close to the centre: moderately dense.
const INNER_SUBURBS: [&str; 6] = ["通州区", "大兴区", "昌平区", "顺义区", "房山区", "门头沟区"];

/// Tiananmen, the centre distances are measured from.
const CITY_CENTRE: (f64, f64) = (116.3975, 39.9087);

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// What a city is made of: its grid, how many sources of each kind it has,
/// how its roads divide into classes, and how often its sources report.
#[derive(Clone, Debug, PartialEq)]
pub struct CityPlan {
    pub grid: Grid,
    pub water_level_sensors: usize,
    pub rain_gauges: usize,
    /// All air-quality stations, standard and micro.
    pub air_stations: usize,
    /// Of which national and municipal standard stations (子站); the rest
    /// are micro stations (微站).
    pub standard_air_stations: usize,
    pub gas_detectors: usize,
    pub road_segments: usize,
    /// Cumulative shares of expressway and expressway + arterial segments,
    /// in the urban districts and elsewhere.
    pub road_class_shares: [(f64, f64); 2],
    /// Kilometre posts advance by 1 to this many km between expressway
    /// segments.
    pub expressway_post_step_km: u64,
    /// Share of arterial and secondary segments on generated local street
    /// names instead of the named roads (a full-scale city has far more
    /// streets than [`ROADS`] names).
    pub local_street_share: f64,
    pub cadence: Cadence,
}

/// How often sources report at a city's natural rate, in milliseconds
/// (lowest and highest interval of a uniform draw). `--rate` scales every
/// interval by one factor; when scenarios happen and how long they last
/// stays in event time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cadence {
    /// Water level in dry weather.
    pub water_dry: (u64, u64),
    /// Water level while its district is wet or the water is high.
    pub water_wet: (u64, u64),
    pub rain: (u64, u64),
    pub air: (u64, u64),
    /// Air stations on the demo's fast cadence after an episode.
    pub air_fast: (u64, u64),
    pub gas: (u64, u64),
    /// A gas detector in alarm.
    pub gas_alarm: u64,
    pub traffic: (u64, u64),
    /// Background incidents as a multiple of the default city's (a dozen an
    /// hour in the Realistic schedule, twenty in the demo).
    pub incident_multiplier: f64,
}

impl Cadence {
    /// The cadences the brief gives for Beijing's monitoring networks:
    /// waterlogging stations every 15 min in dry weather and every 1–2 min
    /// in rain, rain gauges every 5 min, air stations hourly, gas detectors
    /// and road segments every minute.
    pub const STANDARD: Cadence = Cadence {
        water_dry: (15 * MINUTE - 20 * SECOND, 15 * MINUTE + 20 * SECOND),
        water_wet: (MINUTE, 2 * MINUTE),
        rain: (5 * MINUTE - SECOND, 5 * MINUTE + SECOND),
        air: (HOUR - 5 * MINUTE, HOUR + 5 * MINUTE),
        air_fast: (MINUTE - 3 * SECOND, MINUTE + 3 * SECOND),
        gas: (MINUTE - SECOND, MINUTE + SECOND),
        gas_alarm: 15 * SECOND,
        traffic: (MINUTE - 300, MINUTE + 300),
        incident_multiplier: 1.0,
    };

    /// The normal interval of a sensor kind.
    pub fn sensor(&self, kind: SensorKind) -> (u64, u64) {
        match kind {
            SensorKind::WaterLevel => self.water_dry,
            SensorKind::Rainfall => self.rain,
            SensorKind::Pm25 => self.air,
            SensorKind::GasLel => self.gas,
        }
    }
}

/// The middle of an interval range: the mean wait of a uniform draw, and
/// the span over which first reports are spread.
pub(crate) fn middle((lo, hi): (u64, u64)) -> u64 {
    lo + (hi - lo) / 2
}

/// The default city: 300 water-level sensors, 120 rain gauges, 60 air
/// stations, 150 gas detectors and 1,500 road segments on the default grid.
pub fn default_plan() -> CityPlan {
    CityPlan {
        grid: Grid::default(),
        water_level_sensors: 300,
        rain_gauges: 120,
        air_stations: 60,
        standard_air_stations: 60,
        gas_detectors: 150,
        road_segments: 1500,
        road_class_shares: [(0.16, 0.58), (0.3, 0.7)],
        expressway_post_step_km: 3,
        local_street_share: 0.0,
        cadence: Cadence::STANDARD,
    }
}

/// The grid of the full-scale city: Beijing's administrative area (the
/// default grid's bounds, widened by one 500 m cell east and north to fit
/// whole cells) in cells of 0.006° of longitude × 0.0045° of latitude,
/// about 0.51 km × 0.50 km at Beijing's latitude (40° N: 1° of longitude
/// is 85.3 km, 1° of latitude 111.0 km).
pub fn full_scale_grid() -> Grid {
    Grid {
        west: 115.40,
        south: 39.42,
        east: 117.53,
        north: 41.085,
        cols: 355,
        rows: 370,
    }
}

/// Beijing's natural event rate at full scale: about 1.5 billion events a
/// day from sensors, road detectors and floating cars.
pub const FULL_SCALE_EVENTS_PER_S: f64 = 18_000.0;

/// The full-scale city. The counts and where they come from are in
/// `docs/reference-data.md`; in short:
///
/// * 30,000 road segments: about 28,000–30,000 km of highways and urban
///   roads (the municipal statistical yearbook) in links of about 1 km;
/// * 2,000 water-level points: the few hundred waterlogging points and
///   underpasses listed each flood season plus drainage-network level
///   gauges (an estimate of the order of magnitude);
/// * 1,000 rain gauges: over 430 automatic weather stations (the municipal
///   meteorological service, 2018) plus the water authority's gauges;
/// * 1,500 air-quality stations: 67 standard stations and over a thousand
///   micro stations in streets and townships (the environmental monitoring
///   network's reports, 2018);
/// * 15,000 gas detectors: one per about 2 km of a gas network of over
///   20,000 km (the gas utility's reports), at valve wells, regulator
///   stations and adjacent underground spaces (an estimate).
///
/// Sensors report at the standard cadences; road segments report floating-
/// car and detector speeds often enough that the city totals about 18,000
/// events/s ([`FULL_SCALE_EVENTS_PER_S`]).
pub fn full_scale_plan() -> CityPlan {
    let mut plan = CityPlan {
        grid: full_scale_grid(),
        water_level_sensors: 2_000,
        rain_gauges: 1_000,
        air_stations: 1_500,
        standard_air_stations: 67,
        gas_detectors: 15_000,
        road_segments: 30_000,
        // Expressways are about 6 % of the network's length and arterials
        // about a quarter; the urban districts have a few more of both.
        road_class_shares: [(0.08, 0.35), (0.06, 0.30)],
        expressway_post_step_km: 1,
        local_street_share: 0.6,
        cadence: Cadence {
            // Ten times the default city's background incidents: about
            // 120 an hour, 2,900 a day across the municipality (a choice,
            // mostly minor traffic accidents).
            incident_multiplier: 10.0,
            ..Cadence::STANDARD
        },
    };
    // Whatever the sensors do not fill of the natural rate, the roads do.
    let sensors = [
        (SensorKind::WaterLevel, plan.water_level_sensors),
        (SensorKind::Rainfall, plan.rain_gauges),
        (SensorKind::Pm25, plan.air_stations),
        (SensorKind::GasLel, plan.gas_detectors),
    ];
    let sensor_rate: f64 = sensors
        .iter()
        .map(|&(kind, n)| n as f64 * 1000.0 / middle(plan.cadence.sensor(kind)) as f64)
        .sum();
    let incident_rate = 12.0 * plan.cadence.incident_multiplier / 3600.0;
    let traffic_rate = FULL_SCALE_EVENTS_PER_S - sensor_rate - incident_rate;
    let mean = (plan.road_segments as f64 * 1000.0 / traffic_rate).round() as u64;
    // ±10 % around the mean, so reports do not fall into lockstep.
    plan.cadence.traffic = (mean - mean / 10, mean + mean / 10);
    plan
}

/// What a sensor measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SensorKind {
    /// Water depth at an underpass or low point, in metres.
    WaterLevel,
    /// Rainfall since the gauge's previous report (five minutes at the
    /// natural cadence), in millimetres.
    Rainfall,
    /// PM2.5 concentration, in µg/m³.
    Pm25,
    /// Combustible gas, in % of the lower explosive limit.
    GasLel,
}

impl SensorKind {
    pub const ALL: [SensorKind; 4] = [
        SensorKind::WaterLevel,
        SensorKind::Rainfall,
        SensorKind::Pm25,
        SensorKind::GasLel,
    ];

    /// The `kind` field of its events.
    pub fn name(self) -> &'static str {
        match self {
            SensorKind::WaterLevel => "water_level",
            SensorKind::Rainfall => "rainfall",
            SensorKind::Pm25 => "pm25",
            SensorKind::GasLel => "gas_lel",
        }
    }

    /// The `unit` field of its events.
    pub fn unit(self) -> &'static str {
        match self {
            SensorKind::WaterLevel => "m",
            SensorKind::Rainfall => "mm",
            SensorKind::Pm25 => "ug/m3",
            SensorKind::GasLel => "%LEL",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            SensorKind::WaterLevel => "wl",
            SensorKind::Rainfall => "rf",
            SensorKind::Pm25 => "pm",
            SensorKind::GasLel => "gas",
        }
    }
}

/// A road's class, which sets its normal speeds, lanes and flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoadClass {
    Expressway,
    Arterial,
    Secondary,
}

impl RoadClass {
    pub fn name(self) -> &'static str {
        match self {
            RoadClass::Expressway => "expressway",
            RoadClass::Arterial => "arterial",
            RoadClass::Secondary => "secondary",
        }
    }

    /// Normal free-flow speeds, km/h.
    pub fn speed_range(self) -> (f64, f64) {
        match self {
            RoadClass::Expressway => (60.0, 90.0),
            RoadClass::Arterial => (35.0, 55.0),
            RoadClass::Secondary => (25.0, 45.0),
        }
    }
}

/// How built-up a district is; sets how many sensors and roads it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistrictTier {
    /// 城六区.
    Urban,
    InnerSuburb,
    OuterSuburb,
}

impl DistrictTier {
    fn weight(self) -> f64 {
        match self {
            DistrictTier::Urban => 7.0,
            DistrictTier::InnerSuburb => 1.0,
            DistrictTier::OuterSuburb => 0.45,
        }
    }
}

#[derive(Clone, Debug)]
pub struct CityDistrict {
    /// The adcode, e.g. `110105`.
    pub id: Sym,
    /// 朝阳区.
    pub name: String,
    pub name_en: Option<String>,
    pub tier: DistrictTier,
    /// Cells whose centre lies in the district, ascending.
    pub cells: Vec<CellId>,
}

impl CityDistrict {
    /// The name without 区, as it reads inside place names (朝阳).
    pub fn short_name(&self) -> &str {
        self.name.strip_suffix('区').unwrap_or(&self.name)
    }
}

#[derive(Clone, Debug)]
pub struct CitySensor {
    pub id: Sym,
    pub kind: SensorKind,
    pub cell: CellId,
    /// Index into [`City::districts`].
    pub district: usize,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct CitySegment {
    pub id: Sym,
    pub cell: CellId,
    /// Index into [`City::districts`].
    pub district: usize,
    /// 京开高速 k12, 长安街 段3.
    pub name: String,
    /// The road alone (京开高速), for report texts.
    pub road: String,
    pub class: RoadClass,
    /// This segment's usual speed outside rush hours, km/h.
    pub free_speed_kmh: f64,
    pub lanes: u8,
}

/// A place where crowds gather.
#[derive(Clone, Debug)]
pub struct Venue {
    pub name: &'static str,
    pub cell: CellId,
    /// Index into [`City::districts`].
    pub district: usize,
}

/// A simulated city: districts over the grid, sensors, road segments and
/// venues. Everything is public to read; build one with [`beijing_city`]
/// or [`full_scale_beijing`].
#[derive(Clone, Debug)]
pub struct City {
    pub grid: Grid,
    /// How often its sources report at its natural rate.
    pub cadence: Cadence,
    pub districts: Vec<CityDistrict>,
    /// District (index into `districts`) of each cell.
    pub cell_district: Vec<Option<usize>>,
    pub sensors: Vec<CitySensor>,
    pub segments: Vec<CitySegment>,
    pub venues: Vec<Venue>,
    boundaries: Arc<serde_json::Value>,
}

impl City {
    pub fn district_of(&self, cell: CellId) -> Option<usize> {
        self.cell_district.get(cell as usize).copied().flatten()
    }

    /// Events per second of event time the city makes at its natural
    /// cadence in the Realistic schedule, outside scenarios: each source
    /// once per mean interval, and the background incidents. Scenarios add
    /// a little (underpass stations report faster while wet).
    pub fn natural_rate(&self) -> f64 {
        let per_second = |interval: (u64, u64)| 1000.0 / middle(interval) as f64;
        let sensors: f64 = self
            .sensors
            .iter()
            .map(|s| per_second(self.cadence.sensor(s.kind)))
            .sum();
        let roads = self.segments.len() as f64 * per_second(self.cadence.traffic);
        let incidents = 12.0 * self.cadence.incident_multiplier / 3600.0;
        sensors + roads + incidents
    }

    /// The shortest mean interval of any background source, ms: `--rate`
    /// may not push it below what a source can sensibly do.
    pub(crate) fn shortest_interval_ms(&self) -> u64 {
        let sensors = self
            .sensors
            .iter()
            .map(|s| middle(self.cadence.sensor(s.kind)));
        let roads = (!self.segments.is_empty()).then(|| middle(self.cadence.traffic));
        sensors.chain(roads).min().unwrap_or(HOUR)
    }

    /// The reference file of this city: explicit cell assignments and no
    /// `district_boundaries`, so the file is self-contained.
    pub fn reference_file(&self) -> ReferenceFile {
        ReferenceFile {
            grid: Some(self.grid.clone()),
            districts: self
                .districts
                .iter()
                .map(|d| District {
                    id: d.id,
                    name: d.name.clone(),
                    name_en: d.name_en.clone(),
                })
                .collect(),
            district_boundaries: None,
            cells: self
                .districts
                .iter()
                .map(|d| CellAssignment {
                    district: d.id,
                    cells: d.cells.clone(),
                })
                .collect(),
            sensors: self
                .sensors
                .iter()
                .map(|s| SensorRef {
                    id: s.id,
                    cell: s.cell,
                    kind: Sym::intern(s.kind.name()).ok(),
                    name: Some(s.name.clone()),
                })
                .collect(),
            segments: self
                .segments
                .iter()
                .map(|s| SegmentRef {
                    id: s.id,
                    cell: s.cell,
                    name: Some(s.name.clone()),
                    road_class: Some(s.class.name().to_string()),
                })
                .collect(),
        }
    }

    /// Reference data as the server holds it, with the district polygons
    /// kept for the dashboard's map.
    pub fn reference(&self) -> Reference {
        // The file is built from this city's own tables, which name only
        // their own districts and cells of the grid, so it cannot fail.
        Reference::from_file(self.reference_file(), Some((*self.boundaries).clone()))
            .expect("a simulated city's reference data is consistent")
    }

    /// The city with each sensor and segment kept with probability `keep`
    /// (at least one of each sensor kind and one segment stay), for files
    /// that must spread few events over a long time. Ids are unchanged.
    pub(crate) fn sampled(&self, keep: f64, seed: u64) -> City {
        if keep >= 1.0 {
            return self.clone();
        }
        let mut rng = Rng::for_stream(seed, "city-sample");
        let mut city = self.clone();
        city.sensors.clear();
        for kind in SensorKind::ALL {
            let of_kind: Vec<&CitySensor> =
                self.sensors.iter().filter(|s| s.kind == kind).collect();
            let mut kept: Vec<CitySensor> = of_kind
                .iter()
                .filter(|_| rng.chance(keep))
                .map(|s| (*s).clone())
                .collect();
            if kept.is_empty() {
                if let Some(s) = rng.pick(&of_kind) {
                    kept.push((*s).clone());
                }
            }
            city.sensors.extend(kept);
        }
        city.segments = self
            .segments
            .iter()
            .filter(|_| rng.chance(keep))
            .cloned()
            .collect();
        if city.segments.is_empty() {
            if let Some(s) = rng.pick(&self.segments) {
                city.segments.push(s.clone());
            }
        }
        city
    }
}

/// Builds the default city for a seed: the plausible Beijing on the
/// default grid that the demo, the sample rules' tests and the default
/// `jingzhi simulate` use.
pub fn beijing_city(seed: u64) -> City {
    build_city(&default_plan(), seed)
}

/// Builds Beijing at full scale for a seed: 500 m cells over the whole
/// municipality and about 50,000 sensors and road segments
/// ([`full_scale_plan`]).
pub fn full_scale_beijing(seed: u64) -> City {
    build_city(&full_scale_plan(), seed)
}

/// Builds a city to `plan` for a seed.
pub fn build_city(plan: &CityPlan, seed: u64) -> City {
    let geo: serde_json::Value = serde_json::from_str(BEIJING_DISTRICTS_GEOJSON)
        .expect("the embedded Beijing district GeoJSON is valid JSON");
    let polygons =
        district_polygons(&geo).expect("the embedded Beijing district GeoJSON has named polygons");
    let grid = plan.grid.clone();

    let mut districts: Vec<CityDistrict> = polygons
        .iter()
        .map(|(id, name, name_en, _)| CityDistrict {
            id: *id,
            name: name.clone(),
            name_en: name_en.clone(),
            tier: if URBAN_DISTRICTS.contains(&name.as_str()) {
                DistrictTier::Urban
            } else if INNER_SUBURBS.contains(&name.as_str()) {
                DistrictTier::InnerSuburb
            } else {
                DistrictTier::OuterSuburb
            },
            cells: Vec::new(),
        })
        .collect();

    // Centre-in-polygon, first polygon wins, as `Reference::from_file`
    // does (the same function).
    let shapes: Vec<&Polygons> = polygons.iter().map(|(.., p)| p).collect();
    let cell_district = assign_cells_by_centre(&grid, &shapes);
    for (cell, d) in cell_district.iter().enumerate() {
        if let Some(d) = *d {
            districts[d].cells.push(cell as CellId);
        }
    }

    let mut rng = Rng::for_stream(seed, "city");
    let mut builder = Builder {
        plan,
        grid: &grid,
        districts: &districts,
        cell_district: &cell_district,
        density: Vec::new(),
        density_table: WeightedTable::new([]),
    };
    builder.density = (0..grid.cell_count())
        .map(|c| builder.cell_density(c))
        .collect();
    builder.density_table = WeightedTable::new(builder.density.iter().copied());

    let segments = builder.segments(&mut rng);
    let mut sensors = Vec::new();
    builder.water_level_sensors(&mut rng, &segments, &mut sensors);
    builder.rain_gauges(&mut rng, &mut sensors);
    builder.air_stations(&mut rng, &mut sensors);
    builder.gas_detectors(&mut rng, &mut sensors);
    let venues = VENUES
        .iter()
        .filter_map(|(name, lon, lat)| {
            let cell = grid.cell_of(*lon, *lat)?;
            let district = cell_district[cell as usize]?;
            Some(Venue {
                name,
                cell,
                district,
            })
        })
        .collect();

    City {
        grid,
        cadence: plan.cadence,
        districts,
        cell_district,
        sensors,
        segments,
        venues,
        boundaries: Arc::new(geo),
    }
}

/// Kilometres between two lon/lat points near Beijing (equirectangular).
fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let dx = (a.0 - b.0) * 85.4;
    let dy = (a.1 - b.1) * 111.2;
    (dx * dx + dy * dy).sqrt()
}

struct Builder<'a> {
    plan: &'a CityPlan,
    grid: &'a Grid,
    districts: &'a [CityDistrict],
    cell_district: &'a [Option<usize>],
    /// How built-up each cell is; zero outside every district.
    density: Vec<f64>,
    density_table: WeightedTable,
}

impl Builder<'_> {
    fn cell_density(&self, cell: CellId) -> f64 {
        let Some(d) = self.cell_district[cell as usize] else {
            return 0.0;
        };
        let km = distance_km(self.grid.centre(cell), CITY_CENTRE);
        // Density falls off from the centre even inside a tier: 朝阳's
        // CBD is busier than its edge, 通州's new town busier than its fields.
        self.districts[d].tier.weight() * (1.0 + 4.0 * (-km / 12.0).exp())
    }

    fn draw_cell(&self, rng: &mut Rng) -> CellId {
        self.density_table.draw(rng).unwrap_or(0) as CellId
    }

    fn district(&self, cell: CellId) -> usize {
        self.cell_district[cell as usize].unwrap_or(0)
    }

    fn segments(&self, rng: &mut Rng) -> Vec<CitySegment> {
        let plan = self.plan;
        let mut next_marker: BTreeMap<String, u32> = BTreeMap::new();
        let mut out = Vec::with_capacity(plan.road_segments);
        for n in 0..plan.road_segments {
            let cell = self.draw_cell(rng);
            let district = self.district(cell);
            let d = &self.districts[district];
            let (expressway, arterial) = match d.tier {
                DistrictTier::Urban => plan.road_class_shares[0],
                _ => plan.road_class_shares[1],
            };
            let class = match rng.unit() {
                u if u < expressway => RoadClass::Expressway,
                u if u < arterial => RoadClass::Arterial,
                _ => RoadClass::Secondary,
            };
            // The default city draws nothing here, so its roads stay as
            // they were.
            let local = class != RoadClass::Expressway
                && plan.local_street_share > 0.0
                && rng.chance(plan.local_street_share);
            let road = if local {
                local_street(rng, class, d.short_name())
            } else {
                pick_road(rng, class, &d.name).to_string()
            };
            let marker = next_marker.entry(road.clone()).or_insert(0);
            let name = if class == RoadClass::Expressway {
                // Kilometre posts advance by a few km between segments.
                *marker += 1 + rng.below(plan.expressway_post_step_km) as u32;
                format!("{road} k{marker}")
            } else {
                *marker += 1;
                format!("{road} 段{marker}")
            };
            let (lo, hi) = class.speed_range();
            let lanes = match class {
                RoadClass::Expressway => 3 + rng.below(2) as u8,
                RoadClass::Arterial => 2 + rng.below(2) as u8,
                RoadClass::Secondary => 1 + rng.below(2) as u8,
            };
            out.push(CitySegment {
                id: sym(&format!("seg-{:04}", n + 1)),
                cell,
                district,
                name,
                road,
                class,
                free_speed_kmh: round_to(rng.uniform(lo + 2.0, hi - 2.0), 1),
                lanes,
            });
        }
        out
    }

    /// Water-level sensors sit at underpasses, which are on roads: famous
    /// flood-prone bridges first, then cells drawn in proportion to their
    /// road segments.
    fn water_level_sensors(
        &self,
        rng: &mut Rng,
        segments: &[CitySegment],
        out: &mut Vec<CitySensor>,
    ) {
        let kind = SensorKind::WaterLevel;
        let mut by_cell: BTreeMap<CellId, Vec<&CitySegment>> = BTreeMap::new();
        for s in segments {
            by_cell.entry(s.cell).or_default().push(s);
        }
        let cells: Vec<CellId> = by_cell.keys().copied().collect();
        let table = WeightedTable::new(by_cell.values().map(|v| v.len() as f64));
        let mut placed = 0;
        let wanted = self.plan.water_level_sensors;
        for (name, lon, lat) in UNDERPASSES {
            let Some(cell) = self.grid.cell_of(lon, lat) else {
                continue;
            };
            let Some(district) = self.cell_district[cell as usize] else {
                continue;
            };
            placed += 1;
            out.push(CitySensor {
                id: sensor_id(kind, placed),
                kind,
                cell,
                district,
                name: format!("{name}下凹桥区积水监测点"),
            });
        }
        while placed < wanted {
            let cell = table
                .draw(rng)
                .and_then(|i| cells.get(i).copied())
                .unwrap_or_else(|| self.draw_cell(rng));
            let district = self.district(cell);
            let name = match by_cell.get(&cell).and_then(|v| rng.pick(v)) {
                Some(seg) => format!("{} 下穿通道积水监测点", seg.name),
                None => format!("{}低洼点积水监测点", self.districts[district].short_name()),
            };
            placed += 1;
            out.push(CitySensor {
                id: sensor_id(kind, placed),
                kind,
                cell,
                district,
                name,
            });
        }
    }

    fn rain_gauges(&self, rng: &mut Rng, out: &mut Vec<CitySensor>) {
        let kind = SensorKind::Rainfall;
        let mut per_district = vec![0u32; self.districts.len()];
        for n in 1..=self.plan.rain_gauges {
            let cell = self.draw_cell(rng);
            let district = self.district(cell);
            per_district[district] += 1;
            out.push(CitySensor {
                id: sensor_id(kind, n),
                kind,
                cell,
                district,
                name: format!(
                    "{}雨量站{:02}",
                    self.districts[district].short_name(),
                    per_district[district]
                ),
            });
        }
    }

    /// The national control stations at their places, then district
    /// stations and micro stations drawn by density.
    fn air_stations(&self, rng: &mut Rng, out: &mut Vec<CitySensor>) {
        let kind = SensorKind::Pm25;
        let mut placed = 0;
        for (name, lon, lat) in AIR_QUALITY_STATIONS {
            let Some(cell) = self.grid.cell_of(lon, lat) else {
                continue;
            };
            let Some(district) = self.cell_district[cell as usize] else {
                continue;
            };
            placed += 1;
            out.push(CitySensor {
                id: sensor_id(kind, placed),
                kind,
                cell,
                district,
                name: format!("{name}空气质量监测站"),
            });
        }
        let mut per_district = vec![0u32; self.districts.len()];
        let mut micro_per_district = vec![0u32; self.districts.len()];
        while placed < self.plan.air_stations {
            let cell = self.draw_cell(rng);
            let district = self.district(cell);
            let short = self.districts[district].short_name();
            let name = if placed < self.plan.standard_air_stations {
                per_district[district] += 1;
                format!("{short}空气质量子站{:02}", per_district[district])
            } else {
                micro_per_district[district] += 1;
                format!("{short}空气质量微站{:03}", micro_per_district[district])
            };
            placed += 1;
            out.push(CitySensor {
                id: sensor_id(kind, placed),
                kind,
                cell,
                district,
                name,
            });
        }
    }

    fn gas_detectors(&self, rng: &mut Rng, out: &mut Vec<CitySensor>) {
        let kind = SensorKind::GasLel;
        let mut per_district = vec![0u32; self.districts.len()];
        for n in 1..=self.plan.gas_detectors {
            let cell = self.draw_cell(rng);
            let district = self.district(cell);
            per_district[district] += 1;
            let short = self.districts[district].short_name();
            let k = per_district[district];
            let name = if rng.chance(0.6) {
                format!("{short}综合管廊{k}号舱燃气探测器")
            } else {
                format!("{short}燃气调压站{k:02}号可燃气体探测器")
            };
            out.push(CitySensor {
                id: sensor_id(kind, n),
                kind,
                cell,
                district,
                name,
            });
        }
    }
}

fn sym(text: &str) -> Sym {
    // Ids made here are short ASCII, well within the symbol limits.
    Sym::intern(text).expect("simulator ids are short, non-empty names")
}

fn sensor_id(kind: SensorKind, n: usize) -> Sym {
    sym(&format!("{}-{n:04}", kind.id_prefix()))
}

/// `x` rounded to `decimals` places, as the nearest double to the decimal
/// (so that it prints as written: 10.7, not 10.700000000000001).
pub(crate) fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let rounded = (x * scale).round() / scale;
    // No "-0" in the output: a rain gauge reads 0, not minus nothing.
    if rounded == 0.0 {
        0.0
    } else {
        rounded
    }
}

/// A road of `class` through `district`, or any road of that class.
fn pick_road(rng: &mut Rng, class: RoadClass, district: &str) -> &'static str {
    let local: Vec<&'static str> = ROADS
        .iter()
        .filter(|(_, c, ds)| *c == class && ds.contains(&district))
        .map(|(name, ..)| *name)
        .collect();
    if let Some(r) = rng.pick(&local) {
        return r;
    }
    let any: Vec<&'static str> = ROADS
        .iter()
        .filter(|(_, c, _)| *c == class)
        .map(|(name, ..)| *name)
        .collect();
    rng.pick(&any).copied().unwrap_or("长安街")
}

/// A street name of the kind every district has many of (海淀北三街,
/// 朝阳东五路): the named roads in [`ROADS`] are a few dozen, a full-scale
/// city has thousands of streets.
fn local_street(rng: &mut Rng, class: RoadClass, district_short: &str) -> String {
    const SIDES: [&str; 5] = ["东", "西", "南", "北", "中"];
    const ORDINALS: [&str; 10] = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"];
    let side = rng.pick(&SIDES).copied().unwrap_or("中");
    let ordinal = rng.pick(&ORDINALS).copied().unwrap_or("一");
    let kind = match class {
        RoadClass::Arterial => "大街",
        _ => rng.pick(&["街", "路", "里"]).copied().unwrap_or("街"),
    };
    format!("{district_short}{side}{ordinal}{kind}")
}

/// Roads by class and the districts they run through.
const ROADS: &[(&str, RoadClass, &[&str])] = {
    use RoadClass::*;
    &[
        ("二环路", Expressway, &["东城区", "西城区"]),
        ("三环路", Expressway, &["朝阳区", "海淀区", "丰台区"]),
        ("四环路", Expressway, &["朝阳区", "海淀区", "丰台区"]),
        (
            "五环路",
            Expressway,
            &["朝阳区", "海淀区", "丰台区", "石景山区"],
        ),
        (
            "六环路",
            Expressway,
            &["通州区", "大兴区", "房山区", "门头沟区", "昌平区", "顺义区"],
        ),
        ("京开高速", Expressway, &["丰台区", "大兴区"]),
        ("京港澳高速", Expressway, &["丰台区", "房山区"]),
        ("京藏高速", Expressway, &["海淀区", "昌平区", "延庆区"]),
        (
            "京承高速",
            Expressway,
            &["朝阳区", "顺义区", "怀柔区", "密云区"],
        ),
        ("京通快速路", Expressway, &["朝阳区", "通州区"]),
        ("机场高速", Expressway, &["朝阳区", "顺义区"]),
        ("京哈高速", Expressway, &["朝阳区", "通州区"]),
        ("京沪高速", Expressway, &["朝阳区", "通州区"]),
        ("京台高速", Expressway, &["丰台区", "大兴区"]),
        ("京新高速", Expressway, &["海淀区", "昌平区"]),
        ("京礼高速", Expressway, &["昌平区", "延庆区"]),
        ("京平高速", Expressway, &["顺义区", "平谷区"]),
        ("莲石路", Expressway, &["石景山区", "海淀区"]),
        ("阜石路", Expressway, &["石景山区", "海淀区"]),
        ("109新线高速", Expressway, &["门头沟区"]),
        ("长安街", Arterial, &["东城区", "西城区"]),
        ("平安大街", Arterial, &["东城区", "西城区"]),
        ("两广路", Arterial, &["东城区", "西城区"]),
        ("建国路", Arterial, &["朝阳区"]),
        ("朝阳路", Arterial, &["朝阳区"]),
        ("朝阳北路", Arterial, &["朝阳区"]),
        ("姚家园路", Arterial, &["朝阳区"]),
        ("安立路", Arterial, &["朝阳区"]),
        ("北辰路", Arterial, &["朝阳区"]),
        ("京顺路", Arterial, &["朝阳区", "顺义区"]),
        ("中关村大街", Arterial, &["海淀区"]),
        ("学院路", Arterial, &["海淀区"]),
        ("西直门外大街", Arterial, &["西城区", "海淀区"]),
        ("阜成路", Arterial, &["海淀区"]),
        ("复兴路", Arterial, &["海淀区"]),
        ("北清路", Arterial, &["海淀区", "昌平区"]),
        ("丰台路", Arterial, &["丰台区"]),
        ("南苑路", Arterial, &["丰台区"]),
        ("丽泽路", Arterial, &["丰台区"]),
        ("马家堡西路", Arterial, &["丰台区"]),
        ("石景山路", Arterial, &["石景山区"]),
        ("鲁谷路", Arterial, &["石景山区"]),
        ("新华大街", Arterial, &["通州区"]),
        ("运河东大街", Arterial, &["通州区"]),
        ("兴华大街", Arterial, &["大兴区"]),
        ("荣华中路", Arterial, &["大兴区"]),
        ("立汤路", Arterial, &["昌平区"]),
        ("回龙观东大街", Arterial, &["昌平区"]),
        ("顺平路", Arterial, &["顺义区"]),
        ("京周公路", Arterial, &["房山区"]),
        ("109国道", Arterial, &["门头沟区"]),
        ("京密路", Arterial, &["怀柔区", "密云区", "顺义区"]),
        ("平蓟路", Arterial, &["平谷区"]),
        ("延康路", Arterial, &["延庆区"]),
        ("东四北大街", Secondary, &["东城区"]),
        ("鼓楼东大街", Secondary, &["东城区"]),
        ("王府井大街", Secondary, &["东城区"]),
        ("崇文门外大街", Secondary, &["东城区"]),
        ("新街口南大街", Secondary, &["西城区"]),
        ("德胜门内大街", Secondary, &["西城区"]),
        ("宣武门外大街", Secondary, &["西城区"]),
        ("望京街", Secondary, &["朝阳区"]),
        ("酒仙桥路", Secondary, &["朝阳区"]),
        ("劲松路", Secondary, &["朝阳区"]),
        ("工体北路", Secondary, &["朝阳区"]),
        ("知春路", Secondary, &["海淀区"]),
        ("双清路", Secondary, &["海淀区"]),
        ("成府路", Secondary, &["海淀区"]),
        ("苏州街", Secondary, &["海淀区"]),
        ("看丹路", Secondary, &["丰台区"]),
        ("角门路", Secondary, &["丰台区"]),
        ("八角西街", Secondary, &["石景山区"]),
        ("金顶街", Secondary, &["石景山区"]),
        ("玉带河大街", Secondary, &["通州区"]),
        ("梨园北街", Secondary, &["通州区"]),
        ("清源路", Secondary, &["大兴区"]),
        ("金星路", Secondary, &["大兴区"]),
        ("政府街", Secondary, &["昌平区"]),
        ("龙域中街", Secondary, &["昌平区"]),
        ("府前街", Secondary, &["顺义区", "平谷区"]),
        ("拱辰大街", Secondary, &["房山区"]),
        ("新桥大街", Secondary, &["门头沟区"]),
        ("开放路", Secondary, &["怀柔区"]),
        ("新南路", Secondary, &["密云区"]),
        ("高塔路", Secondary, &["延庆区"]),
    ]
};

/// Underpasses known for waterlogging, at their approximate coordinates.
const UNDERPASSES: [(&str, f64, f64); 28] = [
    ("广渠门桥", 116.437, 39.893),
    ("莲花桥", 116.310, 39.897),
    ("六里桥", 116.302, 39.880),
    ("丽泽桥", 116.304, 39.865),
    ("玉泉营桥", 116.354, 39.851),
    ("安华桥", 116.404, 39.970),
    ("四惠桥", 116.497, 39.908),
    ("双井桥", 116.462, 39.893),
    ("万泉河桥", 116.303, 39.980),
    ("木樨地桥", 116.337, 39.906),
    ("西直门桥", 116.355, 39.942),
    ("东直门桥", 116.434, 39.941),
    ("大望桥", 116.476, 39.908),
    ("国贸桥", 116.460, 39.909),
    ("三元桥", 116.456, 39.961),
    ("健翔桥", 116.381, 39.991),
    ("学院桥", 116.352, 39.992),
    ("岳各庄桥", 116.273, 39.866),
    ("永定门桥", 116.404, 39.868),
    ("菜户营桥", 116.342, 39.862),
    ("航天桥", 116.302, 39.928),
    ("马甸桥", 116.378, 39.971),
    ("蓟门桥", 116.351, 39.971),
    ("分钟寺桥", 116.460, 39.862),
    ("十里河桥", 116.459, 39.872),
    ("右安门桥", 116.361, 39.862),
    ("五路桥", 116.278, 39.931),
    ("京原路鲁谷桥", 116.236, 39.898),
];

/// National and municipal air-quality stations.
const AIR_QUALITY_STATIONS: [(&str, f64, f64); 23] = [
    ("东四", 116.417, 39.929),
    ("天坛", 116.407, 39.886),
    ("官园", 116.339, 39.929),
    ("万寿西宫", 116.352, 39.878),
    ("奥体中心", 116.397, 39.982),
    ("农展馆", 116.461, 39.937),
    ("万柳", 116.287, 39.987),
    ("北部新区", 116.174, 40.090),
    ("植物园", 116.207, 40.002),
    ("丰台花园", 116.279, 39.863),
    ("云岗", 116.146, 39.824),
    ("古城", 116.184, 39.914),
    ("房山良乡", 116.136, 39.742),
    ("大兴黄村", 116.404, 39.718),
    ("亦庄开发区", 116.506, 39.795),
    ("通州新城", 116.663, 39.886),
    ("顺义新城", 116.655, 40.127),
    ("昌平镇", 116.230, 40.217),
    ("门头沟龙泉镇", 116.106, 39.937),
    ("平谷镇", 117.100, 40.143),
    ("怀柔镇", 116.628, 40.328),
    ("密云镇", 116.832, 40.370),
    ("延庆夏都", 115.972, 40.453),
];

/// Where crowds gather: stadiums, squares, stations, shopping streets.
const VENUES: [(&str, f64, f64); 20] = [
    ("工人体育场", 116.4473, 39.9302),
    ("国家体育场(鸟巢)", 116.3966, 39.9929),
    ("奥林匹克公园", 116.3917, 40.0024),
    ("天安门广场", 116.3975, 39.9037),
    ("王府井步行街", 116.4109, 39.9147),
    ("三里屯太古里", 116.4551, 39.9334),
    ("西单商业区", 116.3740, 39.9104),
    ("北京南站", 116.3786, 39.8652),
    ("北京西站", 116.3214, 39.8949),
    ("北京站", 116.4270, 39.9029),
    ("中关村", 116.3160, 39.9837),
    ("颐和园", 116.2755, 39.9999),
    ("五棵松体育馆", 116.2740, 39.9070),
    ("首钢园", 116.1640, 39.9210),
    ("北京环球度假区", 116.6710, 39.8540),
    ("国家会议中心", 116.3880, 40.0050),
    ("朝阳公园", 116.4800, 39.9430),
    ("南锣鼓巷", 116.4030, 39.9370),
    ("前门大街", 116.3980, 39.8960),
    ("首都国际机场", 116.6030, 40.0800),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_plausible_beijing() {
        let city = beijing_city(42);
        assert_eq!(city.districts.len(), 16);
        assert!(city.districts.iter().all(|d| !d.cells.is_empty()));
        let count = |k: SensorKind| city.sensors.iter().filter(|s| s.kind == k).count();
        assert_eq!(count(SensorKind::WaterLevel), 300);
        assert_eq!(count(SensorKind::Rainfall), 120);
        assert_eq!(count(SensorKind::Pm25), 60);
        assert_eq!(count(SensorKind::GasLel), 150);
        assert_eq!(city.segments.len(), 1500);
        for s in &city.sensors {
            assert_eq!(city.district_of(s.cell), Some(s.district), "{}", s.name);
        }
        for s in &city.segments {
            assert_eq!(city.district_of(s.cell), Some(s.district), "{}", s.name);
            assert!(
                s.name.contains(" k") || s.name.contains(" 段"),
                "{}",
                s.name
            );
        }
        let urban = |d: usize| city.districts[d].tier == DistrictTier::Urban;
        let urban_segments = city.segments.iter().filter(|s| urban(s.district)).count();
        let urban_water = city
            .sensors
            .iter()
            .filter(|s| s.kind == SensorKind::WaterLevel && urban(s.district))
            .count();
        assert!(urban_segments > 1500 / 2, "{urban_segments}");
        assert!(urban_water > 300 / 2, "{urban_water}");
        assert!(city.venues.len() >= 15);
        assert_eq!(city.sensors[0].id.as_str(), "wl-0001");
        assert!(city.sensors.iter().any(|s| s.id.as_str() == "gas-0150"));
        assert_eq!(city.segments[0].id.as_str(), "seg-0001");
    }

    #[test]
    fn same_seed_same_city() {
        let a = serde_json::to_string(&beijing_city(9).reference_file()).unwrap();
        let b = serde_json::to_string(&beijing_city(9).reference_file()).unwrap();
        let c = serde_json::to_string(&beijing_city(10).reference_file()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn cells_match_the_servers_own_assignment() {
        let city = beijing_city(1);
        let from_polygons = Reference::from_file(
            ReferenceFile::default(),
            Some(serde_json::from_str(BEIJING_DISTRICTS_GEOJSON).unwrap()),
        )
        .unwrap();
        let ours = city.reference();
        assert_eq!(ours.cell_district, from_polygons.cell_district);
    }
}
