//! The TechEmpower Framework Benchmarks' reference data and rules: the
//! `world` table's size, the 12 fortunes, and how a query count is read.
//! The seed loads the data; the routes in `routes::techempower` serve it.

use std::collections::HashMap;

/// Rows in the `world` table.
pub const WORLD_ROWS: i32 = 10_000;

/// The rules: a missing or non-numeric count is 1, and counts are clamped
/// to 1..=500.
pub fn count(params: &HashMap<String, String>, name: &str) -> usize {
    params
        .get(name)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 500) as usize
}

/// The 12 fortunes of the benchmark's reference data.
pub const FORTUNES: &[&str] = &[
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
    "フレームワークのベンチマーク",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_rules() {
        let p = |v: &str| HashMap::from([("queries".to_string(), v.to_string())]);
        assert_eq!(count(&HashMap::new(), "queries"), 1);
        assert_eq!(count(&p("foo"), "queries"), 1);
        assert_eq!(count(&p("0"), "queries"), 1);
        assert_eq!(count(&p("-5"), "queries"), 1);
        assert_eq!(count(&p("20"), "queries"), 20);
        assert_eq!(count(&p("501"), "queries"), 500);
    }
}
