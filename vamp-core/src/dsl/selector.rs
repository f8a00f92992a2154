//! Selector validation for the readers.

/// Checks a selector expression (spec §1.7.3).
pub(crate) fn check(selector: &str) -> Result<(), String> {
    crate::model::expression::check_selector(selector)
}
