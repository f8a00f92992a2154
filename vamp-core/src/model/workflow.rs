//! Workflows (spec §1.13).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Argument, Breed, Dialects, HealthCheck, Map, Metadata, Ref, ReferenceStyle, Scale};

/// A workflow: a breed run on a schedule.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Workflow {
    /// The name (shares the name space with deployments).
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// What runs.
    pub breed: Ref<Breed>,
    /// When it runs.
    pub schedule: Schedule,
    /// The requested status.
    pub status: WorkflowStatus,
    /// Environment variable values (names must exist in an inline breed).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub environment_variables: Map<Option<String>>,
    /// Scale; `None` = the workflow default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Ref<Scale>>,
    /// Arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<Argument>,
    /// Network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Health checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    /// Dialects.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dialects: Dialects,
}

super::reference::named!(Workflow);

impl ReferenceStyle for Workflow {
    const PLAIN_STRING: bool = true;
}

/// When a workflow runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Always running.
    #[default]
    Daemon,
    /// Once per event carrying all these tags.
    Event(Vec<String>),
    /// Every ISO-8601 `period`, from `start`, `repeat` times.
    Time {
        /// E.g. `P1DT2H`, `PT30S`.
        period: String,
        /// `now` or an ISO date-time; `None` = now.
        start: Option<String>,
        /// Number of runs; `None` = forever.
        repeat: Option<u32>,
    },
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Schedule::Daemon => s.serialize_str("daemon"),
            Schedule::Event(tags) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("event", &serde_json::json!({ "tags": tags }))?;
                m.end()
            }
            Schedule::Time {
                period,
                start,
                repeat,
            } => {
                let mut t = serde_json::Map::new();
                t.insert("period".into(), period.clone().into());
                if let Some(start) = start {
                    t.insert("start".into(), start.clone().into());
                }
                if let Some(repeat) = repeat {
                    t.insert("repeat".into(), (*repeat).into());
                }
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("time", &t)?;
                m.end()
            }
        }
    }
}

/// Checks an ISO-8601 period/duration such as `P1Y2M3DT4H5M6S`, `P2W` or `PT0.5S`.
///
/// ```
/// use vamp_core::model::is_valid_period;
/// assert!(is_valid_period("P1DT2H"));
/// assert!(!is_valid_period("1 day"));
/// ```
pub fn is_valid_period(text: &str) -> bool {
    let Some(body) = text.strip_prefix('P') else {
        return false;
    };
    let (date, time) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return false,
        None => (body, None),
    };
    let components = |s: &str, units: &[char], fraction: bool| -> Option<usize> {
        let mut count = 0;
        let mut number = String::new();
        let mut last = 0;
        for c in s.chars() {
            if c.is_ascii_digit() || (fraction && c == '.' && !number.is_empty()) {
                number.push(c);
            } else {
                let idx = units.iter().position(|u| *u == c)?;
                if number.is_empty() || idx < last || (number.contains('.') && c != 'S') {
                    return None;
                }
                last = idx + 1;
                number.clear();
                count += 1;
            }
        }
        number.is_empty().then_some(count)
    };
    let Some(d) = components(date, &['Y', 'M', 'W', 'D'], false) else {
        return false;
    };
    let t = match time {
        Some(t) => match components(t, &['H', 'M', 'S'], true) {
            Some(n) if n > 0 => n,
            _ => return false,
        },
        None => 0,
    };
    d + t > 0
}

/// The status of a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    /// Being started (the default).
    #[default]
    Starting,
    /// Running.
    Running,
    /// Being stopped and removed.
    Stopping,
    /// Being suspended.
    Suspending,
    /// Suspended.
    Suspended,
    /// Being restarted.
    Restarting,
}

impl WorkflowStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [WorkflowStatus; 6] = [
        WorkflowStatus::Starting,
        WorkflowStatus::Running,
        WorkflowStatus::Stopping,
        WorkflowStatus::Suspending,
        WorkflowStatus::Suspended,
        WorkflowStatus::Restarting,
    ];

    /// The status's name as the DSL writes it.
    ///
    /// ```
    /// use vamp_core::model::WorkflowStatus;
    /// for s in WorkflowStatus::ALL {
    ///     assert_eq!(WorkflowStatus::parse(s.as_str()), Some(s));
    /// }
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Starting => "starting",
            WorkflowStatus::Running => "running",
            WorkflowStatus::Stopping => "stopping",
            WorkflowStatus::Suspending => "suspending",
            WorkflowStatus::Suspended => "suspended",
            WorkflowStatus::Restarting => "restarting",
        }
    }

    /// Reads a status name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "starting" => WorkflowStatus::Starting,
            "running" => WorkflowStatus::Running,
            "stopping" => WorkflowStatus::Stopping,
            "suspending" => WorkflowStatus::Suspending,
            "suspended" => WorkflowStatus::Suspended,
            "restarting" => WorkflowStatus::Restarting,
            _ => return None,
        })
    }
}
