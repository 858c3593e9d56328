//! "Did you mean …?": picking the likely intended name from the known ones.
//!
//! Edit distance catches typos (`ocupancy` → `occupancy`); a prefix match
//! catches names written short (`speed` → `speed_kmh`), which edit distance
//! alone would reject as too different.

/// Levenshtein distance in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate `name` most likely stands for, if any is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let candidates: Vec<&'a str> = candidates.into_iter().filter(|c| *c != name).collect();
    let lower = name.to_lowercase();
    if let Some(c) = candidates.iter().find(|c| c.to_lowercase() == lower) {
        return Some(c);
    }
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    let best = candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d);
    if let Some((_, c)) = best {
        return Some(c);
    }
    // Written short or long: `speed` for `speed_kmh`, `water_level` for `water`.
    if len >= 3 {
        return candidates
            .iter()
            .filter(|c| {
                let c = c.to_lowercase();
                c.starts_with(&lower) || (c.chars().count() >= 3 && lower.starts_with(&c))
            })
            .min_by_key(|c| c.len())
            .copied();
    }
    None
}

/// `did you mean `x`?`, when there is an `x`.
pub fn help<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// `a, b and c`.
pub fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let fields = ["speed_kmh", "flow", "occupancy", "segment_id"];
        assert_eq!(did_you_mean("speed", fields), Some("speed_kmh"));
        assert_eq!(did_you_mean("ocupancy", fields), Some("occupancy"));
        assert_eq!(did_you_mean("flw", fields), Some("flow"));
        assert_eq!(did_you_mean("Flow", fields), Some("flow"));
        assert_eq!(did_you_mean("weather", fields), None);
        assert_eq!(did_you_mean("x", fields), None);
        assert_eq!(
            did_you_mean("orang", ["blue", "yellow", "orange", "red"]),
            Some("orange")
        );
        assert_eq!(edit_distance("下穿桥", "下穿"), 1);
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
    }
}
