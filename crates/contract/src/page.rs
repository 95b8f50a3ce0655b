//! One page of a list endpoint (`limit`, `offset`), the same rule everywhere a list is served.

/// A valid page: `limit` in 1..=[`MAX_LIMIT`], `offset` >= 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1..=500.
    pub limit: i64,
    /// >= 0.
    pub offset: i64,
}

/// Page size when the client names none.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page a client may ask for (the OpenAPI validators say the same).
pub const MAX_LIMIT: i64 = 500;

impl Page {
    /// Validates `limit` and `offset` query values, naming the offending one.
    pub fn parse(limit: Option<i64>, offset: Option<i64>) -> Result<Self, String> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("limit must be between 1 and {MAX_LIMIT}"));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err("offset must not be negative".into());
        }
        Ok(Page { limit, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bounds() {
        assert_eq!(Page::parse(None, None).unwrap().limit, 100);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(501), None).is_err());
        assert!(Page::parse(Some(500), Some(-1)).is_err());
        assert_eq!(Page::parse(Some(5), Some(10)).unwrap().offset, 10);
    }
}
