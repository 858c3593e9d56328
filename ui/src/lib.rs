//! The Jingzhi decision dashboard: its static files, embedded in the binary.
//!
//! This crate owns the dashboard's files and exposes them by URL path so
//! that the gateway can serve them without reading the disk:
//!
//! * `static/index.html` + `app.js` — the operator's page: live alert
//!   list, map, overview, alert detail and actions;
//! * `static/rules.html` + `rules.js` — the rule-authoring page;
//! * the modules both use (`i18n.js`, `feed.js`, `model.js`, `charts.js`,
//!   `api.js`, `shell.js`) and `style.css`;
//! * `static/vendor/echarts.min.js` — Apache ECharts 5.6.0, vendored
//!   (`static/vendor/README.md` has its version, checksum and licence);
//! * `assets/beijing-districts.geojson` — the district boundaries.
//!
//! The pages are plain HTML, ES modules and CSS with no build step, and
//! load nothing from the internet.
//!
//! It must not know anything of the server's internals: the pages talk to
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
        path: "/rules.html",
        content_type: HTML,
        body: include_bytes!("../static/rules.html"),
    },
    Asset {
        path: "/app.js",
        content_type: JS,
        body: include_bytes!("../static/app.js"),
    },
    Asset {
        path: "/rules.js",
        content_type: JS,
        body: include_bytes!("../static/rules.js"),
    },
    Asset {
        path: "/i18n.js",
        content_type: JS,
        body: include_bytes!("../static/i18n.js"),
    },
    Asset {
        path: "/feed.js",
        content_type: JS,
        body: include_bytes!("../static/feed.js"),
    },
    Asset {
        path: "/model.js",
        content_type: JS,
        body: include_bytes!("../static/model.js"),
    },
    Asset {
        path: "/charts.js",
        content_type: JS,
        body: include_bytes!("../static/charts.js"),
    },
    Asset {
        path: "/api.js",
        content_type: JS,
        body: include_bytes!("../static/api.js"),
    },
    Asset {
        path: "/shell.js",
        content_type: JS,
        body: include_bytes!("../static/shell.js"),
    },
    Asset {
        path: "/style.css",
        content_type: CSS,
        body: include_bytes!("../static/style.css"),
    },
    Asset {
        path: "/vendor/echarts.min.js",
        content_type: JS,
        body: include_bytes!("../static/vendor/echarts.min.js"),
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

    /// The pages and the modules written for them (not the vendored file).
    const OWN_TEXT: [&str; 11] = [
        "/",
        "/rules.html",
        "/app.js",
        "/rules.js",
        "/i18n.js",
        "/feed.js",
        "/model.js",
        "/charts.js",
        "/api.js",
        "/shell.js",
        "/style.css",
    ];

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
        for path in OWN_TEXT.iter().chain(&[
            "/index.html",
            "/vendor/echarts.min.js",
            "/assets/beijing-districts.geojson",
        ]) {
            assert!(asset(path).is_some(), "{path} missing");
        }
        for path in [
            "",
            "/nope",
            "/index.htm",
            "/static/app.js",
            "/assets/NOTICE.md",
            "/vendor/README.md",
            "/vendor/LICENSE-echarts.txt",
            "/package.json",
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
    }

    #[test]
    fn root_and_index_html_are_the_same_page() {
        assert_eq!(
            asset("/").map(|a| a.body),
            asset("/index.html").map(|a| a.body)
        );
    }

    /// Values of `attr="…"` in an HTML page, and of `from './x.js'` in a
    /// module: what the browser will ask for.
    fn references(body: &str, open: &str, close: char) -> Vec<String> {
        body.match_indices(open)
            .filter_map(|(i, _)| {
                let rest = &body[i + open.len()..];
                rest.find(close).map(|end| rest[..end].to_string())
            })
            .collect()
    }

    #[test]
    fn everything_a_page_or_module_loads_is_served() {
        let mut checked = 0;
        for page in ["/", "/rules.html"] {
            let html = text(page);
            assert!(html.starts_with("<!doctype html>"));
            assert!(
                html.contains(r#"lang="zh-CN""#),
                "{page} defaults to Chinese"
            );
            assert!(html.contains(r#"<link rel="stylesheet" href="style.css">"#));
            assert!(html.contains(r#"<script src="vendor/echarts.min.js" defer></script>"#));
            for target in references(html, "src=\"", '"')
                .into_iter()
                .chain(references(html, "href=\"", '"'))
            {
                if target.starts_with("data:") || target.starts_with('#') {
                    continue;
                }
                let path = if target == "./" {
                    "/".to_string()
                } else {
                    format!("/{target}")
                };
                assert!(
                    asset(&path).is_some(),
                    "{page} loads {target}, which is not served"
                );
                checked += 1;
            }
        }
        for path in OWN_TEXT.iter().filter(|p| p.ends_with(".js")) {
            for target in references(text(path), "from './", '\'') {
                assert!(
                    asset(&format!("/{target}")).is_some(),
                    "{path} imports ./{target}, which is not served"
                );
                checked += 1;
            }
        }
        assert!(checked > 15, "only {checked} references found");
    }

    #[test]
    fn the_pages_have_the_test_ids_browser_tests_rely_on() {
        let html = text("/");
        for id in [
            "connection-status",
            "engine-clock",
            "severity-tile",
            "alert-list",
            "alert-row",
            "alert-state",
            "empty-state",
            "map",
            "district-chart",
            "timeline-chart",
            "filter-district",
            "filter-severity",
            "filter-rule",
            "filter-state",
            "alert-detail",
            "detail-body",
            "detail-actions",
            "detail-history",
            "lang-toggle",
            "user",
            "signin-dialog",
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
        let rules = text("/rules.html");
        for id in [
            "rule-table",
            "rule-editor",
            "gutter",
            "diagnostics",
            "check-status",
            "publish",
            "events-file",
            "run-backtest",
            "backtest-chart",
            "lang-toggle",
        ] {
            assert!(
                rules.contains(&format!(r#"data-testid="{id}""#)),
                "rules.html: data-testid={id} missing"
            );
        }
    }

    #[test]
    fn nothing_is_loaded_from_the_internet() {
        for path in OWN_TEXT {
            let body = text(path);
            for needle in [
                "http://",
                "https://",
                "//cdn",
                "@import",
                "url(",
                "@font-face",
            ] {
                assert!(!body.contains(needle), "{path} contains {needle:?}");
            }
        }
        // The vendored file names XML namespaces and its licence as strings
        // and has no URL of anything to fetch.
        let echarts = text("/vendor/echarts.min.js");
        let mut rest = echarts;
        while let Some(i) = rest.find("http") {
            let url: String = rest[i..]
                .chars()
                .take_while(|c| !matches!(c, '"' | '\'' | ' ' | ')' | '`'))
                .collect();
            assert!(
                url.starts_with("http://www.w3.org/")
                    || url.starts_with("http://www.apache.org/licenses/")
                    || url.starts_with("https://github.com/ecomfe/zrender/blob/master/LICENSE")
                    || !url.contains("://"),
                "echarts.min.js names {url}"
            );
            rest = &rest[i + 4..];
        }
    }

    #[test]
    fn the_scripts_use_only_the_documented_api() {
        let feed = text("/feed.js");
        assert!(feed.contains("'api/v1/alerts/ws'"));
        let app = text("/app.js");
        assert!(app.contains("'api/v1/status'"));
        for path in OWN_TEXT.iter().filter(|p| p.ends_with(".js")) {
            for call in references(text(path), "'api/v1/", '\'')
                .into_iter()
                .chain(references(text(path), "`api/v1/", '`'))
            {
                let known = ["alerts", "status", "whoami", "silences", "rules", "stats"];
                assert!(
                    known.iter().any(|k| call.starts_with(k)),
                    "{path} calls api/v1/{call}, which is not in docs/api.md"
                );
            }
        }
    }

    #[test]
    fn echarts_is_the_vendored_release() {
        let body = asset("/vendor/echarts.min.js").expect("vendored").body;
        assert_eq!(
            sha256_hex(body),
            "bf4a223524e40b77c304bec67e1222cf551f14880cf42c69dc046558e11c07b1",
            "static/vendor/echarts.min.js differs from the release in static/vendor/README.md"
        );
    }

    #[test]
    fn the_district_map_is_a_geojson_feature_collection() {
        let geo = text("/assets/beijing-districts.geojson");
        assert!(geo.trim_start().starts_with('{'));
        assert!(geo.contains(r#""type":"FeatureCollection""#));
        assert!(geo.contains("110105"), "朝阳区 is in the map");
        assert!(geo.contains(r#""adcode""#), "districts are named by code");
    }

    #[test]
    fn debug_shows_the_size_not_the_bytes() {
        let shown = format!("{:?}", asset("/style.css").expect("style"));
        assert!(shown.contains("body_len"));
        assert!(shown.len() < 200);
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(&[b'a'; 1000]),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    /// SHA-256 (FIPS 180-4) as lowercase hex: this crate has no dependencies.
    fn sha256_hex(data: &[u8]) -> String {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for (i, word) in block.chunks(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let mut v = h;
            for i in 0..64 {
                let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
                let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
                let t1 = v[7]
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
                let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
                let t2 = s0.wrapping_add(maj);
                v = [
                    t1.wrapping_add(t2),
                    v[0],
                    v[1],
                    v[2],
                    v[3].wrapping_add(t1),
                    v[4],
                    v[5],
                    v[6],
                ];
            }
            for (a, b) in h.iter_mut().zip(v) {
                *a = a.wrapping_add(b);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }
}
