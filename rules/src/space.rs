//! The spatial model (一图): a regular grid of cells over the city, the
//! districts that cells belong to, and the sensors and road segments that
//! sit in cells.
//!
//! Events name a place by `cell`, by `lon`/`lat` (mapped through the grid),
//! or by the id of a sensor or segment (looked up here). The engine keeps
//! the sensor, segment and cell→district tables as differential collections,
//! so a change to them reaches rule results incrementally; this module owns
//! their file format and validation.

use crate::sym::Sym;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A cell number: `row * cols + col`, row 0 at the south edge.
pub type CellId = u32;

/// A regular lon/lat grid. Neighbours of a cell are the up to eight cells
/// that share an edge or a corner with it; "k rings" are the cells within
/// Chebyshev distance k.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub west: f64,
    pub south: f64,
    pub east: f64,
    pub north: f64,
    pub cols: u32,
    pub rows: u32,
}

impl Default for Grid {
    /// Beijing's administrative area in 100 × 100 cells of about 1.8 km.
    fn default() -> Self {
        Grid {
            west: 115.40,
            south: 39.42,
            east: 117.52,
            north: 41.08,
            cols: 100,
            rows: 100,
        }
    }
}

impl Grid {
    pub fn validate(&self) -> Result<(), String> {
        let finite = [self.west, self.south, self.east, self.north]
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            return Err("grid: west, south, east and north must be finite numbers".into());
        }
        if !(self.west < self.east && self.south < self.north) {
            return Err("grid: west must be less than east and south less than north".into());
        }
        if self.cols == 0 || self.rows == 0 {
            return Err("grid: cols and rows must be at least 1".into());
        }
        if u64::from(self.cols) * u64::from(self.rows) > 16_000_000 {
            return Err("grid: at most 16,000,000 cells".into());
        }
        Ok(())
    }

    pub fn cell_count(&self) -> u32 {
        self.cols * self.rows
    }

    pub fn contains(&self, cell: CellId) -> bool {
        cell < self.cell_count()
    }

    fn step(&self) -> (f64, f64) {
        (
            (self.east - self.west) / f64::from(self.cols),
            (self.north - self.south) / f64::from(self.rows),
        )
    }

    /// The cell containing a point, or `None` outside the grid.
    pub fn cell_of(&self, lon: f64, lat: f64) -> Option<CellId> {
        if !(lon >= self.west && lon < self.east && lat >= self.south && lat < self.north) {
            return None;
        }
        let (dx, dy) = self.step();
        let col = (((lon - self.west) / dx) as u32).min(self.cols - 1);
        let row = (((lat - self.south) / dy) as u32).min(self.rows - 1);
        Some(row * self.cols + col)
    }

    pub fn row_col(&self, cell: CellId) -> (u32, u32) {
        (cell / self.cols, cell % self.cols)
    }

    /// Centre of a cell as (lon, lat).
    pub fn centre(&self, cell: CellId) -> (f64, f64) {
        let (row, col) = self.row_col(cell);
        let (dx, dy) = self.step();
        (
            self.west + (f64::from(col) + 0.5) * dx,
            self.south + (f64::from(row) + 0.5) * dy,
        )
    }

    /// South-west and north-east corners of a cell.
    pub fn bounds(&self, cell: CellId) -> [(f64, f64); 2] {
        let (row, col) = self.row_col(cell);
        let (dx, dy) = self.step();
        let w = self.west + f64::from(col) * dx;
        let s = self.south + f64::from(row) * dy;
        [(w, s), (w + dx, s + dy)]
    }

    /// The cell and every cell within `k` rings of it, clipped to the grid.
    pub fn neighbourhood(&self, cell: CellId, k: u32) -> impl Iterator<Item = CellId> + '_ {
        let (row, col) = self.row_col(cell);
        let r0 = row.saturating_sub(k);
        let r1 = (row + k).min(self.rows - 1);
        let c0 = col.saturating_sub(k);
        let c1 = (col + k).min(self.cols - 1);
        (r0..=r1).flat_map(move |r| (c0..=c1).map(move |c| r * self.cols + c))
    }
}

/// A district (区) of the city.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct District {
    pub id: Sym,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
}

/// An IoT sensor and where it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorRef {
    pub id: Sym,
    pub cell: CellId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Sym>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A road segment and the cell it lies in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRef {
    pub id: Sym,
    pub cell: CellId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `expressway`, `arterial`, `secondary`, … (free text; rules may use it later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub road_class: Option<String>,
}

/// An explicit cell→district assignment in a reference file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellAssignment {
    pub district: Sym,
    pub cells: Vec<CellId>,
}

/// The reference file as written on disk (see `docs/reference-data.md`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    #[serde(default)]
    pub grid: Option<Grid>,
    #[serde(default)]
    pub districts: Vec<District>,
    /// A GeoJSON file of district polygons, relative to the reference file.
    /// Cells whose centre falls in a polygon belong to that district.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district_boundaries: Option<String>,
    /// Explicit assignments; they override the boundaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<CellAssignment>,
    #[serde(default)]
    pub sensors: Vec<SensorRef>,
    #[serde(default)]
    pub segments: Vec<SegmentRef>,
}

/// Reference data as the running system holds it.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    pub grid: Grid,
    pub districts: BTreeMap<Sym, District>,
    /// District of each cell, indexed by cell number.
    pub cell_district: Vec<Option<Sym>>,
    pub sensors: BTreeMap<Sym, SensorRef>,
    pub segments: BTreeMap<Sym, SegmentRef>,
    /// District polygons, kept to serve the map.
    pub boundaries: Option<serde_json::Value>,
}

/// A change to reference data while running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ReferenceChange {
    UpsertSensor(SensorRef),
    RemoveSensor { id: Sym },
    UpsertSegment(SegmentRef),
    RemoveSegment { id: Sym },
    AssignCell { cell: CellId, district: Option<Sym> },
}

impl Reference {
    /// The grid alone, with no districts, sensors or segments.
    pub fn with_grid(grid: Grid) -> Reference {
        let n = grid.cell_count() as usize;
        Reference {
            grid,
            cell_district: vec![None; n],
            ..Default::default()
        }
    }

    /// Loads a reference file, resolving `district_boundaries` relative to it.
    pub fn load(path: &Path) -> Result<Reference, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let file: ReferenceFile = serde_json::from_str(&text)
            .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
        let boundaries = match &file.district_boundaries {
            Some(rel) => {
                let p = path.parent().unwrap_or(Path::new(".")).join(rel);
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    format!("{}: cannot read district boundaries: {e}", p.display())
                })?;
                Some(
                    serde_json::from_str::<serde_json::Value>(&text)
                        .map_err(|e| format!("{}:{}:{}: {e}", p.display(), e.line(), e.column()))?,
                )
            }
            None => None,
        };
        Reference::from_file(file, boundaries).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Builds reference data from a parsed file and optional GeoJSON boundaries.
    pub fn from_file(
        file: ReferenceFile,
        boundaries: Option<serde_json::Value>,
    ) -> Result<Reference, String> {
        let grid = file.grid.unwrap_or_default();
        grid.validate()?;
        let mut reference = Reference::with_grid(grid);
        for d in file.districts {
            if reference.districts.insert(d.id, d.clone()).is_some() {
                return Err(format!("district `{}` is listed twice", d.id));
            }
        }
        if let Some(geo) = &boundaries {
            let polygons = district_polygons(geo)?;
            for (id, name, name_en, _) in &polygons {
                reference.districts.entry(*id).or_insert_with(|| District {
                    id: *id,
                    name: name.clone(),
                    name_en: name_en.clone(),
                });
            }
            let shapes: Vec<&Polygons> = polygons.iter().map(|(.., p)| p).collect();
            for (cell, hit) in assign_cells_by_centre(&reference.grid, &shapes)
                .into_iter()
                .enumerate()
            {
                if let Some(d) = hit {
                    reference.cell_district[cell] = Some(polygons[d].0);
                }
            }
        }
        reference.boundaries = boundaries;
        for a in file.cells {
            if !reference.districts.contains_key(&a.district) {
                return Err(format!("cells: unknown district `{}`", a.district));
            }
            for c in a.cells {
                if !reference.grid.contains(c) {
                    return Err(format!(
                        "cells: cell {c} is outside the grid (0..{})",
                        reference.grid.cell_count()
                    ));
                }
                reference.cell_district[c as usize] = Some(a.district);
            }
        }
        for s in file.sensors {
            reference.check_cell("sensor", s.id, s.cell)?;
            if reference.sensors.insert(s.id, s.clone()).is_some() {
                return Err(format!("sensor `{}` is listed twice", s.id));
            }
        }
        for s in file.segments {
            reference.check_cell("segment", s.id, s.cell)?;
            if reference.segments.insert(s.id, s.clone()).is_some() {
                return Err(format!("segment `{}` is listed twice", s.id));
            }
        }
        Ok(reference)
    }

    fn check_cell(&self, what: &str, id: Sym, cell: CellId) -> Result<(), String> {
        if self.grid.contains(cell) {
            Ok(())
        } else {
            Err(format!(
                "{what} `{id}`: cell {cell} is outside the grid (0..{})",
                self.grid.cell_count()
            ))
        }
    }

    pub fn district_of(&self, cell: CellId) -> Option<Sym> {
        self.cell_district.get(cell as usize).copied().flatten()
    }

    pub fn district_name(&self, id: Sym) -> Option<&str> {
        self.districts.get(&id).map(|d| d.name.as_str())
    }

    /// Validates a change and applies it; returns the change as applied.
    pub fn apply(&mut self, change: &ReferenceChange) -> Result<(), String> {
        match change {
            ReferenceChange::UpsertSensor(s) => {
                self.check_cell("sensor", s.id, s.cell)?;
                self.sensors.insert(s.id, s.clone());
            }
            ReferenceChange::RemoveSensor { id } => {
                self.sensors
                    .remove(id)
                    .ok_or_else(|| format!("no sensor `{id}`"))?;
            }
            ReferenceChange::UpsertSegment(s) => {
                self.check_cell("segment", s.id, s.cell)?;
                self.segments.insert(s.id, s.clone());
            }
            ReferenceChange::RemoveSegment { id } => {
                self.segments
                    .remove(id)
                    .ok_or_else(|| format!("no segment `{id}`"))?;
            }
            ReferenceChange::AssignCell { cell, district } => {
                if !self.grid.contains(*cell) {
                    return Err(format!("cell {cell} is outside the grid"));
                }
                if let Some(d) = district {
                    if !self.districts.contains_key(d) {
                        return Err(format!("unknown district `{d}`"));
                    }
                }
                self.cell_district[*cell as usize] = *district;
            }
        }
        Ok(())
    }

    /// Everything in this reference as a list of changes from empty, the
    /// form in which the engine loads it.
    pub fn as_changes(&self) -> Vec<ReferenceChange> {
        let mut out = Vec::new();
        for (cell, d) in self.cell_district.iter().enumerate() {
            if let Some(d) = d {
                out.push(ReferenceChange::AssignCell {
                    cell: cell as CellId,
                    district: Some(*d),
                });
            }
        }
        out.extend(
            self.sensors
                .values()
                .cloned()
                .map(ReferenceChange::UpsertSensor),
        );
        out.extend(
            self.segments
                .values()
                .cloned()
                .map(ReferenceChange::UpsertSegment),
        );
        out
    }
}

/// A (multi)polygon for point-in-polygon tests: rings of (lon, lat).
#[derive(Clone, Debug, Default)]
pub struct Polygons {
    /// Each polygon is an exterior ring followed by holes.
    pub polygons: Vec<Vec<Vec<(f64, f64)>>>,
}

impl Polygons {
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        self.polygons.iter().any(|rings| {
            let mut inside = false;
            for ring in rings {
                if ring_contains(ring, lon, lat) {
                    inside = !inside;
                }
            }
            inside
        })
    }
}

/// For every cell of `grid`, the first of `shapes` that holds the cell's
/// centre, exactly as [`Polygons::contains`] decides it.
///
/// A grid of 500 m cells over Beijing has 130,000 cells and the district
/// outlines about 9,000 vertices, so testing each centre against each
/// outline would take a billion steps. Instead each row of centres is
/// crossed with every edge once (a scanline): a centre is inside a polygon
/// when an odd number of the row's crossings of that polygon's rings lie
/// east of it. The crossings are computed with the same expression as the
/// point test, so both agree bit for bit.
pub fn assign_cells_by_centre(grid: &Grid, shapes: &[&Polygons]) -> Vec<Option<usize>> {
    let cols = grid.cols as usize;
    let mut out = vec![None; grid.cell_count() as usize];
    let lat_ranges: Vec<Vec<(f64, f64)>> = shapes
        .iter()
        .map(|shape| {
            shape
                .polygons
                .iter()
                .map(|rings| lat_range(rings))
                .collect()
        })
        .collect();
    let centres_lon: Vec<f64> = (0..grid.cols).map(|col| grid.centre(col).0).collect();
    let mut crossings: Vec<f64> = Vec::new();
    for row in 0..grid.rows {
        let lat = grid.centre(row * grid.cols).1;
        let cells = &mut out[row as usize * cols..(row as usize + 1) * cols];
        for (index, shape) in shapes.iter().enumerate() {
            for (rings, &(lo, hi)) in shape.polygons.iter().zip(&lat_ranges[index]) {
                if lat < lo || lat > hi {
                    continue;
                }
                crossings.clear();
                for ring in rings {
                    ring_crossings(ring, lat, &mut crossings);
                }
                if crossings.is_empty() {
                    continue;
                }
                crossings.sort_by(f64::total_cmp);
                // Walk the centres west to east; `west_of` counts crossings
                // at or west of the centre, the rest lie east of it.
                let mut west_of = 0;
                for (cell, &lon) in cells.iter_mut().zip(&centres_lon) {
                    while west_of < crossings.len() && crossings[west_of] <= lon {
                        west_of += 1;
                    }
                    if cell.is_none() && (crossings.len() - west_of) % 2 == 1 {
                        *cell = Some(index);
                    }
                }
            }
        }
    }
    out
}

fn lat_range(rings: &[Vec<(f64, f64)>]) -> (f64, f64) {
    rings
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
            (lo.min(y), hi.max(y))
        })
}

/// Where the edges of `ring` cross the parallel at `y`: the longitudes `c`
/// for which [`ring_contains`] would flip at a point `(x, y)` with `x < c`.
fn ring_crossings(ring: &[(f64, f64)], y: f64, out: &mut Vec<f64>) {
    let n = ring.len();
    if n < 3 {
        return;
    }
    let mut j = n - 1;
    for i in 0..n {
        let (xi, yi) = ring[i];
        let (xj, yj) = ring[j];
        if (yi > y) != (yj > y) {
            out.push((xj - xi) * (y - yi) / (yj - yi) + xi);
        }
        j = i;
    }
}

fn ring_contains(ring: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let n = ring.len();
    if n < 3 {
        return false;
    }
    let mut j = n - 1;
    for i in 0..n {
        let (xi, yi) = ring[i];
        let (xj, yj) = ring[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

type DistrictPolygon = (Sym, String, Option<String>, Polygons);

/// Reads district polygons from a GeoJSON FeatureCollection whose features
/// carry `properties.name` and an id (`adcode` property or feature `id`).
pub fn district_polygons(geo: &serde_json::Value) -> Result<Vec<DistrictPolygon>, String> {
    let features = geo
        .get("features")
        .and_then(|f| f.as_array())
        .ok_or("district boundaries: not a GeoJSON FeatureCollection")?;
    let mut out = Vec::new();
    for (i, f) in features.iter().enumerate() {
        let props = f.get("properties");
        let name = props
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| format!("district boundaries: feature {i} has no properties.name"))?;
        let id = props
            .and_then(|p| p.get("adcode"))
            .or_else(|| f.get("id"))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| name.to_string());
        let id =
            Sym::intern(&id).map_err(|e| format!("district boundaries: feature {i}: id {e}"))?;
        let name_en = props
            .and_then(|p| p.get("name_en"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let geometry = f
            .get("geometry")
            .ok_or_else(|| format!("district boundaries: feature {i} has no geometry"))?;
        let coords = geometry.get("coordinates");
        let polys = match geometry.get("type").and_then(|t| t.as_str()) {
            Some("Polygon") => vec![rings(coords)?],
            Some("MultiPolygon") => coords
                .and_then(|c| c.as_array())
                .ok_or("district boundaries: MultiPolygon without coordinates")?
                .iter()
                .map(|p| rings(Some(p)))
                .collect::<Result<_, _>>()?,
            other => {
                return Err(format!(
                    "district boundaries: feature {i} has geometry {other:?}; expected Polygon or MultiPolygon"
                ))
            }
        };
        out.push((id, name.to_string(), name_en, Polygons { polygons: polys }));
    }
    Ok(out)
}

fn rings(v: Option<&serde_json::Value>) -> Result<Vec<Vec<(f64, f64)>>, String> {
    let bad = || "district boundaries: malformed polygon coordinates".to_string();
    v.and_then(|v| v.as_array())
        .ok_or_else(bad)?
        .iter()
        .map(|ring| {
            ring.as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|pt| {
                    let a = pt.as_array().ok_or_else(bad)?;
                    match (
                        a.first().and_then(|x| x.as_f64()),
                        a.get(1).and_then(|x| x.as_f64()),
                    ) {
                        (Some(x), Some(y)) => Ok((x, y)),
                        _ => Err(bad()),
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_maps_points_and_neighbours() {
        let g = Grid::default();
        let c = g.cell_of(116.40, 39.90).unwrap();
        let (lon, lat) = g.centre(c);
        assert_eq!(g.cell_of(lon, lat), Some(c));
        assert_eq!(g.cell_of(0.0, 0.0), None);
        assert_eq!(g.neighbourhood(c, 1).count(), 9);
        assert_eq!(g.neighbourhood(0, 1).count(), 4);
        assert_eq!(g.neighbourhood(c, 0).collect::<Vec<_>>(), vec![c]);
    }

    #[test]
    fn scanline_assignment_agrees_with_the_point_test() {
        // A square with a hole, a triangle overlapping it (first shape wins
        // where they overlap) and a two-part multipolygon.
        let square = Polygons {
            polygons: vec![vec![
                vec![(116.0, 39.6), (116.6, 39.6), (116.6, 40.2), (116.0, 40.2)],
                vec![(116.2, 39.8), (116.4, 39.8), (116.4, 40.0), (116.2, 40.0)],
            ]],
        };
        let triangle = Polygons {
            polygons: vec![vec![vec![(116.3, 39.5), (117.2, 39.9), (116.5, 40.6)]]],
        };
        let parts = Polygons {
            polygons: vec![
                vec![vec![(115.5, 40.5), (115.9, 40.5), (115.7, 40.9)]],
                vec![vec![
                    (116.9, 40.6),
                    (117.4, 40.6),
                    (117.4, 41.0),
                    (116.9, 41.0),
                ]],
            ],
        };
        let shapes = [&square, &triangle, &parts];
        let grid = Grid {
            cols: 157,
            rows: 131,
            ..Grid::default()
        };
        let fast = assign_cells_by_centre(&grid, &shapes);
        let mut seen = [0usize; 3];
        for cell in 0..grid.cell_count() {
            let (lon, lat) = grid.centre(cell);
            let slow = shapes.iter().position(|s| s.contains(lon, lat));
            assert_eq!(fast[cell as usize], slow, "cell {cell} at ({lon}, {lat})");
            if let Some(i) = slow {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    }

    #[test]
    fn polygon_with_hole() {
        let p = Polygons {
            polygons: vec![vec![
                vec![(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)],
                vec![(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)],
            ]],
        };
        assert!(p.contains(3.0, 3.0));
        assert!(!p.contains(1.5, 1.5));
        assert!(!p.contains(5.0, 1.0));
    }
}
