//! The city the server knows when no reference file is given: the default
//! grid over Beijing with its sixteen districts.

use jingzhi_rules::space::{Reference, ReferenceFile};

/// Beijing's district boundaries, shipped with the dashboard.
pub const BEIJING_DISTRICTS: &str = include_str!("../../ui/assets/beijing-districts.geojson");

/// The default grid, its cells assigned to Beijing's districts.
pub fn default_reference() -> Result<Reference, String> {
    let geo: serde_json::Value = serde_json::from_str(BEIJING_DISTRICTS)
        .map_err(|e| format!("built-in district boundaries: {e}"))?;
    Reference::from_file(ReferenceFile::default(), Some(geo))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_district_gets_cells() {
        let r = super::default_reference().unwrap();
        assert_eq!(r.districts.len(), 16);
        for d in r.districts.keys() {
            assert!(
                r.cell_district.iter().any(|c| c == &Some(*d)),
                "{d} has no cell"
            );
        }
    }
}
