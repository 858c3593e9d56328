//! Interned short strings for categorical values (event kinds, sensor and
//! segment ids, district ids).
//!
//! Interning turns every comparison a rule makes on a kind into an integer
//! comparison and keeps entity ids out of the heap on the hot path. The table
//! only grows, so it is capped: a client sending endless distinct ids gets a
//! per-line error instead of exhausting memory. Free text and one-off ids
//! (incident ids, descriptions) are never interned.

use crate::fxhash::FxHashMap;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{OnceLock, RwLock};

/// Most distinct symbols the process will hold.
pub const MAX_SYMBOLS: usize = 4_000_000;
/// Longest string that may be interned, in bytes.
pub const MAX_SYMBOL_LEN: usize = 128;

/// An interned string. Equality, hashing and ordering are on the number,
/// which is cheap and consistent within one process; anything shown to a
/// person sorts by [`Sym::as_str`] instead.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(u32);

struct Table {
    by_text: HashMap<&'static str, u32>,
    len: usize,
}

/// Texts by number, readable without a lock: segment `k` holds numbers
/// `2^k - 1 .. 2^(k+1) - 1`, allocated when first needed and never moved.
/// Numbers are handed out under the table's write lock, and a text is
/// stored before its number is published.
const SEGMENTS: usize = 23;
static TEXTS: [OnceLock<Box<[OnceLock<&'static str>]>>; SEGMENTS] =
    [const { OnceLock::new() }; SEGMENTS];

fn slot(n: usize) -> (usize, usize) {
    let k = (usize::BITS - 1 - (n + 1).leading_zeros()) as usize;
    (k, n + 1 - (1 << k))
}

fn store_text(n: usize, text: &'static str) {
    let (k, i) = slot(n);
    let segment = TEXTS[k].get_or_init(|| (0..1usize << k).map(|_| OnceLock::new()).collect());
    let _ = segment[i].set(text);
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        RwLock::new(Table {
            by_text: HashMap::new(),
            len: 0,
        })
    })
}

thread_local! {
    static CACHE: RefCell<FxHashMap<&'static str, Sym>> = RefCell::new(FxHashMap::default());
}

/// Why a string could not be interned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymError {
    #[error("is longer than {MAX_SYMBOL_LEN} bytes")]
    TooLong,
    #[error("is empty")]
    Empty,
    #[error("would exceed the limit of {MAX_SYMBOLS} distinct names")]
    TableFull,
}

impl Sym {
    /// Interns `text`, returning the same symbol for the same text.
    pub fn intern(text: &str) -> Result<Sym, SymError> {
        if text.is_empty() {
            return Err(SymError::Empty);
        }
        if text.len() > MAX_SYMBOL_LEN {
            return Err(SymError::TooLong);
        }
        if let Some(sym) = CACHE.with(|c| c.borrow().get(text).copied()) {
            return Ok(sym);
        }
        let sym = Self::intern_global(text)?;
        CACHE.with(|c| {
            let mut cache = c.borrow_mut();
            // The cache mirrors the global table; bound it so idle threads
            // that once saw a burst of ids do not keep a second copy forever.
            if cache.len() > 1 << 20 {
                cache.clear();
            }
            cache.insert(sym.as_str(), sym);
        });
        Ok(sym)
    }

    fn intern_global(text: &str) -> Result<Sym, SymError> {
        {
            let t = table().read().unwrap_or_else(|e| e.into_inner());
            if let Some(&n) = t.by_text.get(text) {
                return Ok(Sym(n));
            }
        }
        let mut t = table().write().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = t.by_text.get(text) {
            return Ok(Sym(n));
        }
        if t.len >= MAX_SYMBOLS {
            return Err(SymError::TableFull);
        }
        let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
        let n = t.len;
        store_text(n, leaked);
        t.len += 1;
        t.by_text.insert(leaked, n as u32);
        Ok(Sym(n as u32))
    }

    /// Looks `text` up without interning it.
    pub fn lookup(text: &str) -> Option<Sym> {
        if let Some(sym) = CACHE.with(|c| c.borrow().get(text).copied()) {
            return Some(sym);
        }
        let t = table().read().unwrap_or_else(|e| e.into_inner());
        t.by_text.get(text).map(|&n| Sym(n))
    }

    pub fn as_str(self) -> &'static str {
        let (k, i) = slot(self.0 as usize);
        // A Sym exists only after its text was stored.
        TEXTS[k]
            .get()
            .and_then(|segment| segment[i].get())
            .copied()
            .unwrap_or("")
    }

    /// Number of symbols interned so far.
    pub fn count() -> usize {
        table().read().unwrap_or_else(|e| e.into_inner()).len
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Symbols travel between timely workers as text, so the numbering stays a
// private detail of each process (and of each run).
impl serde::Serialize for Sym {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Sym {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Sym::intern(&text).map_err(|e| serde::de::Error::custom(format!("name `{text}` {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_symbol() {
        let a = Sym::intern("water_level").unwrap();
        let b = Sym::intern("water_level").unwrap();
        let c = Sym::intern("flood").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str(), "water_level");
        assert_eq!(Sym::lookup("water_level"), Some(a));
    }

    #[test]
    fn slots_cover_numbers_without_gaps() {
        assert_eq!(slot(0), (0, 0));
        assert_eq!(slot(1), (1, 0));
        assert_eq!(slot(2), (1, 1));
        assert_eq!(slot(3), (2, 0));
        assert!(slot(MAX_SYMBOLS - 1).0 < SEGMENTS);
        let many: Vec<Sym> = (0..5000)
            .map(|i| Sym::intern(&format!("many-{i}")).unwrap())
            .collect();
        for (i, s) in many.iter().enumerate() {
            assert_eq!(s.as_str(), format!("many-{i}"));
        }
    }

    #[test]
    fn rejects_empty_and_long() {
        assert_eq!(Sym::intern(""), Err(SymError::Empty));
        assert_eq!(Sym::intern(&"x".repeat(200)), Err(SymError::TooLong));
    }
}
