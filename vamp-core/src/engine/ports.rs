//! Gateway port allocation (spec §3.5 step 2).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use crate::dsl::{DslError, ErrorKind, Mark};

/// Picks free gateway ports from a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAllocator {
    range: RangeInclusive<u16>,
}

impl Default for PortAllocator {
    /// Vamp's default range, 40000–45000.
    fn default() -> Self {
        PortAllocator::new(40000..=45000)
    }
}

impl PortAllocator {
    /// Allocates from `range`.
    pub fn new(range: RangeInclusive<u16>) -> Self {
        PortAllocator { range }
    }

    /// The range.
    pub fn range(&self) -> &RangeInclusive<u16> {
        &self.range
    }

    /// The next port of the range not in `taken`, counting upward after `last` (the last port
    /// handed out) and wrapping around once; `NoAvailablePortError` when the range is full.
    ///
    /// ```
    /// use std::collections::BTreeSet;
    /// use vamp_core::engine::PortAllocator;
    /// let ports = PortAllocator::new(40000..=40002);
    /// let taken = BTreeSet::from([40001]);
    /// assert_eq!(ports.next(&taken, Some(40000)).unwrap(), 40002);
    /// assert_eq!(ports.next(&taken, Some(40002)).unwrap(), 40000);
    /// ```
    pub fn next(&self, taken: &BTreeSet<u16>, last: Option<u16>) -> Result<u16, DslError> {
        let (start, end) = (*self.range.start(), *self.range.end());
        let from = match last {
            Some(l) if (start..end).contains(&l) => l + 1,
            _ => start,
        };
        (from..=end)
            .chain(start..from)
            .find(|p| !taken.contains(p))
            .ok_or_else(|| {
                DslError::new(
                    ErrorKind::NoAvailablePortError,
                    "",
                    Mark::default(),
                    format!("no free gateway port left in {start}-{end}"),
                    "widen the gateway port range, or remove unused gateways",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_skips_taken_and_wraps() {
        let ports = PortAllocator::new(10..=14);
        let taken = BTreeSet::from([11, 12]);
        assert_eq!(ports.next(&taken, None).unwrap(), 10);
        assert_eq!(ports.next(&taken, Some(10)).unwrap(), 13);
        assert_eq!(ports.next(&taken, Some(14)).unwrap(), 10, "wraps around");
        assert_eq!(
            ports.next(&taken, Some(99)).unwrap(),
            10,
            "a last port outside restarts"
        );
        let full: BTreeSet<u16> = (10..=14).collect();
        let e = ports.next(&full, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoAvailablePortError);
        assert!(e.message.contains("10-14"));
    }
}
