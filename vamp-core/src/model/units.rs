//! Unit values (spec §1.2): percentages, CPU, memory and time.
//!
//! Each unit keeps an exact integer representation (per cent, millicores, bytes, seconds), so a
//! value written in normalized form reads back to exactly the same value.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Why a unit value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

/// A percentage from 0 to 100, written `"N%"` (weights, condition strengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percentage(u8);

impl Percentage {
    /// 0 %.
    pub const ZERO: Percentage = Percentage(0);
    /// 100 %.
    pub const FULL: Percentage = Percentage(100);

    /// A percentage, if `value` is at most 100.
    pub fn new(value: u8) -> Option<Self> {
        (value <= 100).then_some(Percentage(value))
    }

    /// The value, 0–100.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Reads `"N%"`, with optional blanks around the number and the sign (spec §1.2).
    ///
    /// ```
    /// use vamp_core::model::Percentage;
    /// assert_eq!("50%".parse::<Percentage>().unwrap().get(), 50);
    /// assert!("150%".parse::<Percentage>().is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let body = text
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| UnitError(format!("'{text}' is not a percentage like \"50%\"")))?
            .trim();
        if body.is_empty() || body.len() > 3 || !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UnitError(format!(
                "'{text}' is not a percentage like \"50%\""
            )));
        }
        let n: u16 = body
            .parse()
            .map_err(|_| UnitError(format!("'{text}' is not a percentage")))?;
        u8::try_from(n)
            .ok()
            .and_then(Percentage::new)
            .ok_or_else(|| UnitError(format!("{n}% is more than 100%")))
    }
}

impl FromStr for Percentage {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Percentage::parse(s)
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Percentage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A CPU quantity in cores, kept as millicores (`0.5` = `"500m"` = 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpu(u64);

impl Cpu {
    /// From millicores.
    pub fn from_millis(millis: u64) -> Self {
        Cpu(millis)
    }

    /// Millicores.
    pub fn millis(self) -> u64 {
        self.0
    }

    /// Cores as a float.
    pub fn cores(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// From a number of cores; negative, non-finite or absurdly large values are rejected.
    pub fn from_cores(cores: f64) -> Result<Self, UnitError> {
        if !(0.0..=1.0e9).contains(&cores) {
            return Err(UnitError(format!("cpu {cores} must be a positive number")));
        }
        Ok(Cpu((cores * 1000.0).round() as u64))
    }

    /// Reads `0.5`, `"0.5"` or `"500m"`.
    ///
    /// ```
    /// use vamp_core::model::Cpu;
    /// assert_eq!(Cpu::parse("500m").unwrap(), Cpu::parse("0.5").unwrap());
    /// ```
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let t = text.trim();
        if let Some(m) = t.strip_suffix('m') {
            let millis = parse_decimal(m, 0).ok_or_else(|| {
                UnitError(format!("'{text}' is not a cpu value like 0.5 or 500m"))
            })?;
            return Ok(Cpu(millis));
        }
        parse_decimal(t, 3)
            .map(Cpu)
            .ok_or_else(|| UnitError(format!("'{text}' is not a cpu value like 0.5 or 500m")))
    }
}

impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.cores())
    }
}

/// A memory quantity, kept in bytes; written in megabytes (`"256.00MB"`, spec §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Memory(u64);

impl Memory {
    /// From bytes.
    pub fn from_bytes(bytes: u64) -> Self {
        Memory(bytes)
    }

    /// Bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Megabytes (10^6 bytes) as a float.
    pub fn megabytes(self) -> f64 {
        self.0 as f64 / 1.0e6
    }

    /// Reads a number with a unit: `K`/`KB`/`k`/`kb`, `Ki`, `M`/`MB`, `Mi`, `G`/`GB`, `Gi`
    /// (also `T`/`TB`/`Ti`). Bare numbers are rejected, as in Vamp.
    ///
    /// ```
    /// use vamp_core::model::Memory;
    /// assert_eq!(Memory::parse("1Gi").unwrap().bytes(), 1 << 30);
    /// assert_eq!(Memory::parse("256MB").unwrap().bytes(), 256_000_000);
    /// assert!(Memory::parse("256").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let t = text.trim();
        let split = t
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(|| UnitError(format!("memory '{text}' needs a unit, e.g. 256MB or 1Gi")))?;
        let (number, unit) = t.split_at(split);
        let multiplier: u64 = match unit.trim() {
            "K" | "KB" | "k" | "kb" | "Kb" | "kB" => 1_000,
            "Ki" | "ki" | "KiB" => 1 << 10,
            "M" | "MB" | "m" | "mb" | "Mb" | "mB" => 1_000_000,
            "Mi" | "mi" | "MiB" => 1 << 20,
            "G" | "GB" | "g" | "gb" | "Gb" | "gB" => 1_000_000_000,
            "Gi" | "gi" | "GiB" => 1 << 30,
            "T" | "TB" | "t" | "tb" => 1_000_000_000_000,
            "Ti" | "ti" | "TiB" => 1 << 40,
            other => {
                return Err(UnitError(format!(
                    "memory unit '{other}' is unknown; use K, Ki, M, MB, Mi, G, GB or Gi"
                )));
            }
        };
        // Parse with 6 decimals so "268.435456MB" is exact in bytes.
        let micro = parse_decimal(number.trim(), 6)
            .ok_or_else(|| UnitError(format!("memory '{text}' is not a number with a unit")))?;
        let bytes = (u128::from(micro) * u128::from(multiplier)).div_ceil(1_000_000);
        u64::try_from(bytes)
            .map(Memory)
            .map_err(|_| UnitError(format!("memory '{text}' is too large")))
    }
}

impl fmt::Display for Memory {
    /// Megabytes with at least two decimals (`256.00MB`); more when needed to stay exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000;
        let frac = self.0 % 1_000_000;
        let mut digits = format!("{frac:06}");
        while digits.len() > 2 && digits.ends_with('0') {
            digits.pop();
        }
        write!(f, "{whole}.{digits}MB")
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A duration in whole seconds (`30s`, `2m`, `1h`, or a bare integer of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seconds(u64);

impl Seconds {
    /// From seconds.
    pub fn new(seconds: u64) -> Self {
        Seconds(seconds)
    }

    /// Seconds.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Reads `<n>s|sec|second|seconds`, `<n>m|min|minute|minutes`, `<n>h|hrs|hour|hours` or `<n>`.
    ///
    /// ```
    /// use vamp_core::model::Seconds;
    /// assert_eq!(Seconds::parse("2m").unwrap().get(), 120);
    /// ```
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| UnitError(format!("'{text}' is not a duration like 30s, 5m or 1h")))?;
        let factor = match unit.trim() {
            "" | "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hrs" | "hour" | "hours" => 3600,
            other => {
                return Err(UnitError(format!(
                    "duration unit '{other}' is unknown; use s, m or h"
                )));
            }
        };
        n.checked_mul(factor)
            .map(Seconds)
            .ok_or_else(|| UnitError(format!("duration '{text}' is too large")))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses a non-negative decimal `123.456` into an integer scaled by 10^`decimals`, exactly.
/// Digits beyond `decimals` are rounded half up. Returns `None` for anything else.
fn parse_decimal(text: &str, decimals: u32) -> Option<u64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() > 15
    {
        return None;
    }
    let scale = 10u64.pow(decimals);
    let mut value = if int.is_empty() {
        0
    } else {
        int.parse::<u64>().ok()?
    }
    .checked_mul(scale)?;
    let mut place = scale;
    let mut digits = frac.bytes();
    for b in digits.by_ref() {
        place /= 10;
        if place == 0 {
            if b >= b'5' {
                value = value.checked_add(1)?;
            }
            break;
        }
        value = value.checked_add(u64::from(b - b'0') * place)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(Percentage::parse(" 7 % ").unwrap().get(), 7);
        assert_eq!(Percentage::parse("100%").unwrap().to_string(), "100%");
        for bad in ["50", "101%", "-1%", "1000%", "%", "a%", "5.5%"] {
            assert!(Percentage::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu() {
        assert_eq!(Cpu::parse("0.25").unwrap().millis(), 250);
        assert_eq!(Cpu::parse("2").unwrap().millis(), 2000);
        assert_eq!(Cpu::parse("100m").unwrap().millis(), 100);
        assert!(Cpu::parse("-1").is_err());
        assert!(Cpu::parse("x").is_err());
    }

    #[test]
    fn memory_units() {
        let mb = |s: &str| Memory::parse(s).unwrap().bytes();
        assert_eq!(mb("1K"), 1000);
        assert_eq!(mb("1kb"), 1000);
        assert_eq!(mb("1Ki"), 1024);
        assert_eq!(mb("1Mi"), 1_048_576);
        assert_eq!(mb("1.5GB"), 1_500_000_000);
        assert_eq!(mb("2Gi"), 2 << 30);
        assert_eq!(Memory::parse("256MB").unwrap().to_string(), "256.00MB");
        assert_eq!(Memory::parse("1Gi").unwrap().to_string(), "1073.741824MB");
        assert_eq!(
            Memory::parse("1073.741824MB").unwrap(),
            Memory::parse("1Gi").unwrap()
        );
        assert!(Memory::parse("256").is_err());
        assert!(Memory::parse("12XB").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(Seconds::parse("30").unwrap().get(), 30);
        assert_eq!(Seconds::parse("10sec").unwrap().get(), 10);
        assert_eq!(Seconds::parse("1hour").unwrap().get(), 3600);
        assert!(Seconds::parse("1d").is_err());
        assert!(Seconds::parse("-1s").is_err());
    }
}
