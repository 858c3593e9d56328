//! Access control: API tokens, roles and district scopes.
//!
//! Tokens are defined in the config file by the SHA-256 of their text (the
//! text itself is never stored), each with a name (who is acting, as the
//! audit log records it), one or more roles and, for operators, optionally
//! the districts they work on. A request presents its token as
//! `Authorization: Bearer TOKEN`, or — for browsers opening a WebSocket,
//! which cannot set headers — as the `token` query parameter.
//!
//! With no tokens configured access control is off: every request acts as
//! `anonymous` with every role (a development setup; `serve` warns).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// What a token may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send events and watermarks, change reference data.
    Ingest,
    /// Read alerts and act on them (acknowledge, assign, silence, …).
    Operator,
    /// Read, check, backtest and publish rules.
    Author,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Operator, Role::Author, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Operator => "operator",
            Role::Author => "author",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}` (expected ingest, operator, author or admin)")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One token as the config file defines it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who uses the token; recorded as the actor of what it does.
    pub name: String,
    /// Lower-case hex SHA-256 of the token's text (`jingzhi token new` prints it).
    pub sha256: String,
    pub roles: Vec<Role>,
    /// District codes the token is limited to; absent: all districts.
    #[serde(default)]
    pub districts: Option<Vec<String>>,
}

/// The access-control settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Let requests without a token read alerts, rules and statistics (a
    /// wall screen in the command center); acting still needs a token.
    #[serde(default)]
    pub open_reads: bool,
}

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub roles: BTreeSet<Role>,
    /// `None`: every district.
    pub districts: Option<BTreeSet<String>>,
}

impl Principal {
    /// The caller when access control is off: every role, every district.
    pub fn unrestricted() -> Principal {
        Principal {
            name: "anonymous".into(),
            roles: Role::ALL.into_iter().collect(),
            districts: None,
        }
    }

    /// A reader without a token under `open_reads`.
    fn open_reader() -> Principal {
        Principal {
            name: "anonymous".into(),
            roles: BTreeSet::new(),
            districts: None,
        }
    }

    /// Whether the caller has `role` (admins have every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// Whether the caller may see an alert in `district`. A caller limited
    /// to districts does not see alerts that have none.
    pub fn sees(&self, district: Option<&str>) -> bool {
        match (&self.districts, district) {
            (None, _) => true,
            (Some(set), Some(d)) => set.contains(d),
            (Some(_), None) => false,
        }
    }
}

/// What a request wants to do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read alerts, rules, silences, statistics, the live feed.
    Read,
    /// Send events, watermarks and reference data.
    Ingest,
    /// Act on alerts, manage silences.
    Operate,
    /// Check, backtest and publish rules.
    Author,
}

impl Access {
    /// The roles that grant this access (admin grants everything).
    fn granted_by(self, role: Role) -> bool {
        match self {
            Access::Read => true,
            Access::Ingest => role == Role::Ingest,
            Access::Operate => role == Role::Operator,
            Access::Author => role == Role::Author,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Ingest => "the ingest role",
            Access::Operate => "the operator role",
            Access::Author => "the author role",
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this request needs an API token: send `Authorization: Bearer TOKEN`")]
    Missing,
    #[error("the API token is not valid")]
    Invalid,
    #[error("`{name}` may not do this: it needs {needed}")]
    Forbidden { name: String, needed: &'static str },
    #[error("`{name}` may not act on alerts in district {district}")]
    OutOfScope { name: String, district: String },
}

impl Refusal {
    /// The label of `jingzhi_auth_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing_token",
            Refusal::Invalid => "invalid_token",
            Refusal::Forbidden { .. } => "forbidden",
            Refusal::OutOfScope { .. } => "out_of_scope",
        }
    }

    /// 401 for who-are-you, 403 for you-may-not.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Refusal::Missing | Refusal::Invalid)
    }
}

/// The configured tokens, looked up by hash.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    by_hash: HashMap<[u8; 32], Principal>,
    open_reads: bool,
}

impl Auth {
    /// Checks the settings: hashes are 64 hex digits, names are unique and
    /// not blank, every token has a role, district lists are not empty.
    pub fn new(config: &AuthConfig) -> Result<Auth, String> {
        let mut by_hash = HashMap::new();
        let mut names = BTreeSet::new();
        for (i, t) in config.tokens.iter().enumerate() {
            let at = format!("auth.tokens[{i}]");
            if t.name.trim().is_empty() {
                return Err(format!("{at}.name must not be empty"));
            }
            if !names.insert(t.name.clone()) {
                return Err(format!("{at}.name `{}` is used by another token", t.name));
            }
            let hash = parse_hex32(&t.sha256).ok_or_else(|| {
                format!(
                    "{at}.sha256 must be the 64 hex digits of the token's SHA-256 (`jingzhi token new` prints one)"
                )
            })?;
            if t.roles.is_empty() {
                return Err(format!("{at}.roles must name at least one role"));
            }
            if t.districts.as_ref().is_some_and(|d| d.is_empty()) {
                return Err(format!(
                    "{at}.districts is empty: leave it out for every district"
                ));
            }
            let principal = Principal {
                name: t.name.clone(),
                roles: t.roles.iter().copied().collect(),
                districts: t.districts.as_ref().map(|d| d.iter().cloned().collect()),
            };
            if by_hash.insert(hash, principal).is_some() {
                return Err(format!("{at}.sha256 is the hash of another token too"));
            }
        }
        Ok(Auth {
            by_hash,
            open_reads: config.open_reads,
        })
    }

    /// Whether access control is on (some token is configured).
    pub fn enabled(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// Who presents `token` (`None`: no token given), and whether they may
    /// have `access`.
    pub fn check(&self, token: Option<&str>, access: Access) -> Result<Principal, Refusal> {
        if !self.enabled() {
            return Ok(Principal::unrestricted());
        }
        let principal = match token {
            None if access == Access::Read && self.open_reads => {
                return Ok(Principal::open_reader())
            }
            None => return Err(Refusal::Missing),
            Some(token) => self
                .by_hash
                .get(&sha256(token.as_bytes()))
                .cloned()
                .ok_or(Refusal::Invalid)?,
        };
        if principal
            .roles
            .iter()
            .any(|r| *r == Role::Admin || access.granted_by(*r))
        {
            Ok(principal)
        } else {
            Err(Refusal::Forbidden {
                name: principal.name,
                needed: access.describe(),
            })
        }
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The hex SHA-256 of a token, as the config file wants it.
pub fn hash_token(token: &str) -> String {
    sha256(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token: `jz_` and 32 hex digits (128 bits from the OS).
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!(
        "jz_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, token: &str, roles: &[Role], districts: Option<&[&str]>) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            sha256: hash_token(token),
            roles: roles.to_vec(),
            districts: districts.map(|d| d.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn roles_grant_their_access_and_admin_grants_all() {
        let auth = Auth::new(&AuthConfig {
            tokens: vec![
                entry("feed", "t-ingest", &[Role::Ingest], None),
                entry("chaoyang", "t-op", &[Role::Operator], Some(&["110105"])),
                entry("root", "t-admin", &[Role::Admin], None),
            ],
            open_reads: false,
        })
        .unwrap();
        assert!(auth.enabled());
        assert_eq!(auth.check(None, Access::Read), Err(Refusal::Missing));
        assert_eq!(
            auth.check(Some("nope"), Access::Read),
            Err(Refusal::Invalid)
        );
        assert!(auth.check(Some("t-ingest"), Access::Ingest).is_ok());
        assert!(matches!(
            auth.check(Some("t-ingest"), Access::Operate),
            Err(Refusal::Forbidden { .. })
        ));
        let op = auth.check(Some("t-op"), Access::Operate).unwrap();
        assert!(op.sees(Some("110105")));
        assert!(!op.sees(Some("110101")));
        assert!(!op.sees(None));
        assert!(auth.check(Some("t-op"), Access::Author).is_err());
        for access in [
            Access::Read,
            Access::Ingest,
            Access::Operate,
            Access::Author,
        ] {
            assert!(auth.check(Some("t-admin"), access).is_ok());
        }
    }

    #[test]
    fn open_reads_and_no_tokens() {
        let open = Auth::new(&AuthConfig {
            tokens: vec![entry("x", "t", &[Role::Operator], None)],
            open_reads: true,
        })
        .unwrap();
        assert!(open.check(None, Access::Read).is_ok());
        assert_eq!(open.check(None, Access::Operate), Err(Refusal::Missing));
        let off = Auth::new(&AuthConfig::default()).unwrap();
        assert!(!off.enabled());
        assert!(off.check(None, Access::Author).is_ok());
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let mut bad = entry("x", "t", &[Role::Operator], None);
        bad.sha256 = "abc".into();
        let e = Auth::new(&AuthConfig {
            tokens: vec![bad],
            open_reads: false,
        })
        .unwrap_err();
        assert!(e.starts_with("auth.tokens[0].sha256"), "{e}");
        let e = Auth::new(&AuthConfig {
            tokens: vec![
                entry("x", "t", &[Role::Operator], None),
                entry("x", "u", &[Role::Operator], None),
            ],
            open_reads: false,
        })
        .unwrap_err();
        assert!(e.contains("auth.tokens[1].name"), "{e}");
    }

    #[test]
    fn tokens_are_random_and_hashes_are_hex() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 35);
        let h = hash_token(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(parse_hex32(&h).map(|_| ()), Some(()));
    }
}
