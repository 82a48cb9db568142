//! One page of a list: `{items, next_cursor}`, with opaque keyset cursors (the last row's sort key),
//! so a page costs the same at row 100,000 as at row 1 and a walk sees every row once.

use serde::{Deserialize, Serialize};

/// Rows per page when the caller does not say.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most rows one page may hold.
pub const MAX_LIMIT: i64 = 500;

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A refused `limit` or `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    Limit,
    #[error("cursor is not one this list returned")]
    Cursor,
}

/// The page size: [`DEFAULT_LIMIT`] when absent, 1 to [`MAX_LIMIT`] otherwise.
pub fn limit(limit: Option<i64>) -> Result<i64, PageError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(PageError::Limit),
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched: the extra row only says there is more;
    /// the cursor is the key of the last row kept.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(key)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// A cursor that is one integer id (lists newest first by id).
pub fn id_cursor(cursor: Option<&str>) -> Result<Option<i64>, PageError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<i64>().map_err(|_| PageError::Cursor))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_keep_limit_rows_and_point_at_the_last() {
        let page = Page::from_rows(vec![5, 4, 3], 2, |n| n.to_string());
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor.as_deref(), Some("4"));
        let last = Page::from_rows(vec![2, 1], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
        assert_eq!(limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(limit(Some(0)), Err(PageError::Limit));
        assert_eq!(id_cursor(Some("12")), Ok(Some(12)));
        assert_eq!(id_cursor(Some("x")), Err(PageError::Cursor));
        assert_eq!(id_cursor(None), Ok(None));
    }
}
