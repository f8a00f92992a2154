//! Workflows that run (spec §5.6): the pure planner — the status machine and the `daemon`,
//! `time` and `event` schedules on a clock the caller passes ([`plan`]) — and ISO-8601
//! periods ([`Period`]).

mod period;
pub mod plan;

pub use period::Period;

#[cfg(test)]
mod tests;
