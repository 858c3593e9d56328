//! The Jingzhi decision dashboard: its static files, embedded in the binary.
//!
//! This crate owns the dashboard's files (`static/index.html`, `static/app.js`,
//! `static/style.css` and the district boundaries in `assets/`) and exposes
//! them by URL path so that the gateway can serve them without reading the
//! disk. The page is plain HTML, JavaScript and CSS with no build step and
//! loads nothing from the internet.
//!
//! It must not know anything of the server's internals: the page talks to
//! the server only through the documented HTTP and WebSocket API
//! (`docs/api.md`: `/api/v1/alerts/ws`, `/api/v1/status`, …), and this crate
//! has no dependencies.
//!
//! ```
//! let page = jingzhi_ui::asset("/").expect("the dashboard page");
//! assert_eq!(page.content_type, "text/html; charset=utf-8");
//! assert!(jingzhi_ui::asset("/nope").is_none());
//! ```

use std::fmt;

/// One file of the dashboard, as served at `path`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The URL path, starting with `/`.
    pub path: &'static str,
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

impl fmt::Debug for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Asset")
            .field("path", &self.path)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const GEOJSON: &str = "application/geo+json";

const INDEX_HTML: &[u8] = include_bytes!("../static/index.html");

static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: INDEX_HTML,
    },
    Asset {
        path: "/index.html",
        content_type: HTML,
        body: INDEX_HTML,
    },
    Asset {
        path: "/app.js",
        content_type: JS,
        body: include_bytes!("../static/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: CSS,
        body: include_bytes!("../static/style.css"),
    },
    Asset {
        path: "/assets/beijing-districts.geojson",
        content_type: GEOJSON,
        body: include_bytes!("../assets/beijing-districts.geojson"),
    },
];

/// The asset served at the URL path `path` (without query string), if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Every asset, `/` first.
pub fn assets() -> &'static [Asset] {
    ASSETS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> &'static str {
        let a = asset(path).unwrap_or_else(|| panic!("{path} is served"));
        std::str::from_utf8(a.body).unwrap_or_else(|e| panic!("{path} is UTF-8: {e}"))
    }

    #[test]
    fn every_asset_is_non_empty_with_a_unique_absolute_path() {
        let mut seen = std::collections::HashSet::new();
        for a in assets() {
            assert!(a.path.starts_with('/'), "{} starts with /", a.path);
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert!(seen.insert(a.path), "{} listed twice", a.path);
            assert_eq!(asset(a.path), Some(a));
        }
        assert_eq!(assets()[0].path, "/");
    }

    #[test]
    fn the_expected_paths_are_served() {
        for path in [
            "/",
            "/index.html",
            "/app.js",
            "/style.css",
            "/assets/beijing-districts.geojson",
        ] {
            assert!(asset(path).is_some(), "{path} missing");
        }
        for path in [
            "",
            "/nope",
            "/index.htm",
            "/static/app.js",
            "/assets/NOTICE.md",
            "/app.js/",
        ] {
            assert!(asset(path).is_none(), "{path:?} should not be served");
        }
    }

    #[test]
    fn content_types_match_the_files() {
        for a in assets() {
            let expected = match a.path.rsplit('.').next() {
                _ if a.path == "/" => HTML,
                Some("html") => HTML,
                Some("js") => JS,
                Some("css") => CSS,
                Some("geojson") => GEOJSON,
                other => panic!("no content type expected for {other:?}"),
            };
            assert_eq!(a.content_type, expected, "{}", a.path);
        }
        assert_eq!(
            asset("/app.js").map(|a| a.content_type),
            Some("text/javascript; charset=utf-8")
        );
    }

    #[test]
    fn root_and_index_html_are_the_same_page() {
        assert_eq!(
            asset("/").map(|a| a.body),
            asset("/index.html").map(|a| a.body)
        );
    }

    #[test]
    fn the_page_loads_its_script_and_style() {
        let html = text("/");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains(r#"<script type="module" src="app.js">"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="style.css">"#));
        assert!(html.contains(r#"lang="zh-CN""#));
    }

    #[test]
    fn the_page_has_the_test_ids_browser_tests_rely_on() {
        let html = text("/");
        for id in [
            "connection-status",
            "engine-clock",
            "severity-tile",
            "alert-list",
            "alert-row",
            "empty-state",
            "alert-list-more",
        ] {
            assert!(
                html.contains(&format!(r#"data-testid="{id}""#)),
                "data-testid={id} missing"
            );
        }
        for sev in ["red", "orange", "yellow", "blue"] {
            assert!(
                html.contains(&format!(r#"data-severity="{sev}""#)),
                "tile {sev} missing"
            );
        }
    }

    #[test]
    fn nothing_is_loaded_from_the_internet() {
        for path in ["/", "/app.js", "/style.css"] {
            let body = text(path);
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!body.contains(needle), "{path} contains {needle:?}");
            }
        }
    }

    #[test]
    fn the_script_uses_only_the_documented_api() {
        let js = text("/app.js");
        assert!(js.contains("'api/v1/alerts/ws'"));
        assert!(js.contains("'api/v1/status'"));
    }

    #[test]
    fn the_district_map_is_a_geojson_feature_collection() {
        let geo = text("/assets/beijing-districts.geojson");
        assert!(geo.trim_start().starts_with('{'));
        assert!(geo.contains(r#""type":"FeatureCollection""#));
        assert!(geo.contains("110105"), "朝阳区 is in the map");
    }

    #[test]
    fn debug_shows_the_size_not_the_bytes() {
        let shown = format!("{:?}", asset("/style.css").expect("style"));
        assert!(shown.contains("body_len"));
        assert!(shown.len() < 200);
    }
}
