//! Cursor pagination shared by every list: ask for a limit after a cursor, get items and the next cursor.

use serde::Serialize;

/// A page request: at most `limit` items after `cursor` (an opaque string from the previous page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items, 1 to [`PageRequest::MAX_LIMIT`].
    pub limit: u32,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The largest page a backend returns.
    pub const MAX_LIMIT: u32 = 1_000;
    /// The page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The first page of `limit` items (clamped to 1..=MAX_LIMIT).
    pub fn first(limit: u32) -> Self {
        Self { limit: limit.clamp(1, Self::MAX_LIMIT), cursor: None }
    }

    /// The page after `cursor`.
    pub fn after(limit: u32, cursor: impl Into<String>) -> Self {
        Self { limit: limit.clamp(1, Self::MAX_LIMIT), cursor: Some(cursor.into()) }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(Self::DEFAULT_LIMIT)
    }
}

/// One page of results, newest first, and the cursor for the next page when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from a query that fetched up to `limit + 1` rows: the extra row only proves a next page
    /// exists, and the cursor is the last kept item's key.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}
