//! Multi-row statements: a batch is written with few statements of power-of-two sizes, so each
//! size is prepared once and stays in the statement cache, and a thousand rows cost a handful of
//! round trips to the database thread instead of a thousand.

use std::sync::OnceLock;

/// Statement sizes for `total` rows: the largest power of two up to `max` that fits, repeatedly.
///
/// `max` must be a power of two.
pub(crate) fn chunk_sizes(total: usize, max: usize) -> impl Iterator<Item = usize> {
    let mut rest = total;
    std::iter::from_fn(move || {
        (rest > 0).then(|| {
            let size = max.min(1 << rest.ilog2());
            rest -= size;
            size
        })
    })
}

/// One statement per power-of-two size up to `max`, built by `build(rows)` once and kept.
pub(crate) struct Statements {
    cell: OnceLock<Vec<String>>,
    max: usize,
    build: fn(usize) -> String,
}

impl Statements {
    pub(crate) const fn new(max: usize, build: fn(usize) -> String) -> Self {
        Self { cell: OnceLock::new(), max, build }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The statement for `rows` rows (a power of two no larger than the maximum).
    pub(crate) fn get(&self, rows: usize) -> &str {
        let statements =
            self.cell.get_or_init(|| (0..=self.max.trailing_zeros()).map(|power| (self.build)(1 << power)).collect());
        &statements[rows.trailing_zeros() as usize]
    }
}

/// `(?, …, ?), (?, …, ?)`: `rows` groups of `columns` placeholders.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row.as_str(); rows].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_two_that_add_up() {
        assert_eq!(chunk_sizes(0, 64).collect::<Vec<_>>(), Vec::<usize>::new());
        assert_eq!(chunk_sizes(1, 64).collect::<Vec<_>>(), [1]);
        assert_eq!(chunk_sizes(200, 64).collect::<Vec<_>>(), [64, 64, 64, 8]);
        assert_eq!(chunk_sizes(7, 64).collect::<Vec<_>>(), [4, 2, 1]);
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}
