//! Reading and writing dates with .NET format strings, as Entra's
//! `FormatDateTime` does, in the invariant (en-US) culture.
//!
//! Custom specifiers: `y yy yyyy`, `M MM MMM MMMM`, `d dd ddd dddd`,
//! `H HH h hh`, `m mm`, `s ss`, `f`..`fffffff`, `F`..`FFFFFFF`, `t tt`,
//! `z zz zzz`, `K`, `:` and `/`; `'text'`, `"text"` and `\c` are literals,
//! `%c` is a single specifier, and anything else (such as the `Z` of
//! `yyyyMMddHHmmss.fZ`) is copied literally. A one-letter format is a standard
//! format (`d D f F g G M o r s t T u U y`).

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, Timelike};

/// A date and time as read from text: the clock reading plus what is known of
/// its zone (like .NET's `DateTimeKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The wall-clock reading.
    pub local: NaiveDateTime,
    /// Its zone.
    pub zone: Zone,
}

/// What is known of a stamp's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    /// No zone given; treated as UTC where one is needed.
    Unspecified,
    /// UTC (`Z`).
    Utc,
    /// A fixed offset from UTC.
    Offset(FixedOffset),
}

impl Stamp {
    /// The same instant as a UTC clock reading.
    pub fn utc(&self) -> NaiveDateTime {
        match self.zone {
            Zone::Offset(o) => self.local.checked_sub_offset(o).unwrap_or(self.local),
            _ => self.local,
        }
    }

    /// The same instant, marked as UTC.
    pub fn to_utc(self) -> Stamp {
        Stamp {
            local: self.utc(),
            zone: Zone::Utc,
        }
    }

    /// A UTC stamp.
    pub fn from_utc(local: NaiveDateTime) -> Stamp {
        Stamp {
            local,
            zone: Zone::Utc,
        }
    }
}

/// The format Entra uses for the dates its functions return.
pub(crate) const ENTRA_FORMAT: &str = "M/d/yyyy h:mm:ss tt";

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Year(usize),
    Month(usize),
    Day(usize),
    DayName(usize),
    Hour24(usize),
    Hour12(usize),
    Minute(usize),
    Second(usize),
    Fraction { digits: usize, optional: bool },
    AmPm(usize),
    Offset(usize),
    Kind,
    Era,
    Lit(String),
}

/// Expand a standard (one-letter) format; `true` means "show in UTC".
fn standard(format: &str) -> Option<(&'static str, bool)> {
    Some(match format {
        "d" => ("M/d/yyyy", false),
        "D" => ("dddd, MMMM d, yyyy", false),
        "f" => ("dddd, MMMM d, yyyy h:mm tt", false),
        "F" => ("dddd, MMMM d, yyyy h:mm:ss tt", false),
        "g" => ("M/d/yyyy h:mm tt", false),
        "G" => ("M/d/yyyy h:mm:ss tt", false),
        "M" | "m" => ("MMMM d", false),
        "o" | "O" => ("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK", false),
        "r" | "R" => ("ddd, dd MMM yyyy HH':'mm':'ss 'GMT'", true),
        "s" => ("yyyy'-'MM'-'dd'T'HH':'mm':'ss", false),
        "t" => ("h:mm tt", false),
        "T" => ("h:mm:ss tt", false),
        "u" => ("yyyy'-'MM'-'dd HH':'mm':'ss'Z'", true),
        "U" => ("dddd, MMMM d, yyyy h:mm:ss tt", true),
        "y" | "Y" => ("MMMM yyyy", false),
        _ => return None,
    })
}

fn tokenize(format: &str) -> Result<(Vec<Tok>, bool), String> {
    if format.is_empty() {
        return Err("the date format is empty".into());
    }
    let (pattern, utc) = if format.chars().count() == 1 {
        match standard(format) {
            Some((p, utc)) => (p, utc),
            None => {
                return Err(format!(
                    "'{format}' is not a standard date format; use one of d D f F g G M o r s t T u U y, or a custom format such as yyyy-MM-dd"
                ));
            }
        }
    } else {
        (format, false)
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let push_lit = |toks: &mut Vec<Tok>, s: &str| {
        if let Some(Tok::Lit(prev)) = toks.last_mut() {
            prev.push_str(s);
        } else {
            toks.push(Tok::Lit(s.to_string()));
        }
    };
    while let Some(&c) = chars.get(i) {
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let mut used = run;
        match c {
            'y' => toks.push(Tok::Year(run)),
            'M' => toks.push(Tok::Month(run.min(4))),
            'd' if run >= 3 => toks.push(Tok::DayName(run.min(4))),
            'd' => toks.push(Tok::Day(run)),
            'H' => toks.push(Tok::Hour24(run.min(2))),
            'h' => toks.push(Tok::Hour12(run.min(2))),
            'm' => toks.push(Tok::Minute(run.min(2))),
            's' => toks.push(Tok::Second(run.min(2))),
            'f' | 'F' => {
                if run > 7 {
                    return Err(format!(
                        "'{}' has more than 7 fraction digits",
                        c.to_string().repeat(run)
                    ));
                }
                toks.push(Tok::Fraction {
                    digits: run,
                    optional: c == 'F',
                });
            }
            't' => toks.push(Tok::AmPm(run.min(2))),
            'z' => toks.push(Tok::Offset(run.min(3))),
            'K' => {
                used = 1;
                toks.push(Tok::Kind);
            }
            'g' => toks.push(Tok::Era),
            ':' | '/' => {
                used = 1;
                push_lit(&mut toks, &c.to_string());
            }
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| format!("unclosed {c} quote in date format '{format}'"))?;
                let lit: String = chars[i + 1..i + 1 + end].iter().collect();
                push_lit(&mut toks, &lit);
                used = end + 2;
            }
            '\\' => {
                let next = chars
                    .get(i + 1)
                    .ok_or_else(|| format!("date format '{format}' ends with a lone '\\'"))?;
                push_lit(&mut toks, &next.to_string());
                used = 2;
            }
            '%' => used = 1,
            c => {
                used = 1;
                push_lit(&mut toks, &c.to_string());
            }
        }
        i += used;
    }
    Ok((toks, utc))
}

/// Write `stamp` with a .NET format string.
pub(crate) fn format(stamp: Stamp, format: &str) -> Result<String, String> {
    let (toks, utc) = tokenize(format)?;
    let stamp = if utc { stamp.to_utc() } else { stamp };
    let t = stamp.local;
    let mut out = String::new();
    for tok in &toks {
        match tok {
            Tok::Year(1) => out.push_str(&(t.year().rem_euclid(100)).to_string()),
            Tok::Year(2) => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Tok::Year(n) => out.push_str(&format!("{:0width$}", t.year(), width = *n)),
            Tok::Month(1) => out.push_str(&t.month().to_string()),
            Tok::Month(2) => out.push_str(&format!("{:02}", t.month())),
            Tok::Month(n) => {
                let name = MONTHS.get(t.month0() as usize).copied().unwrap_or("");
                out.push_str(if *n == 3 {
                    name.get(..3).unwrap_or(name)
                } else {
                    name
                });
            }
            Tok::Day(1) => out.push_str(&t.day().to_string()),
            Tok::Day(_) => out.push_str(&format!("{:02}", t.day())),
            Tok::DayName(n) => {
                let name = DAYS
                    .get(t.weekday().num_days_from_monday() as usize)
                    .copied()
                    .unwrap_or("");
                out.push_str(if *n == 3 {
                    name.get(..3).unwrap_or(name)
                } else {
                    name
                });
            }
            Tok::Hour24(1) => out.push_str(&t.hour().to_string()),
            Tok::Hour24(_) => out.push_str(&format!("{:02}", t.hour())),
            Tok::Hour12(n) => {
                let h = match t.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                if *n == 1 {
                    out.push_str(&h.to_string());
                } else {
                    out.push_str(&format!("{h:02}"));
                }
            }
            Tok::Minute(1) => out.push_str(&t.minute().to_string()),
            Tok::Minute(_) => out.push_str(&format!("{:02}", t.minute())),
            Tok::Second(1) => out.push_str(&t.second().to_string()),
            Tok::Second(_) => out.push_str(&format!("{:02}", t.second())),
            Tok::Fraction { digits, optional } => {
                let nanos = t.nanosecond() % 1_000_000_000;
                let all = format!("{nanos:09}");
                let mut s: String = all.chars().take(*digits).collect();
                if *optional {
                    while s.ends_with('0') {
                        s.pop();
                    }
                    if s.is_empty() && out.ends_with('.') {
                        out.pop();
                    }
                }
                out.push_str(&s);
            }
            Tok::AmPm(n) => {
                let s = if t.hour() < 12 { "AM" } else { "PM" };
                out.push_str(if *n == 1 { &s[..1] } else { s });
            }
            Tok::Offset(n) => {
                let secs = match stamp.zone {
                    Zone::Offset(o) => o.local_minus_utc(),
                    _ => 0,
                };
                let sign = if secs < 0 { '-' } else { '+' };
                let (h, m) = (secs.abs() / 3600, secs.abs() % 3600 / 60);
                match n {
                    1 => out.push_str(&format!("{sign}{h}")),
                    2 => out.push_str(&format!("{sign}{h:02}")),
                    _ => out.push_str(&format!("{sign}{h:02}:{m:02}")),
                }
            }
            Tok::Kind => match stamp.zone {
                Zone::Unspecified => {}
                Zone::Utc => out.push('Z'),
                Zone::Offset(o) => {
                    let secs = o.local_minus_utc();
                    let sign = if secs < 0 { '-' } else { '+' };
                    let (h, m) = (secs.abs() / 3600, secs.abs() % 3600 / 60);
                    out.push_str(&format!("{sign}{h:02}:{m:02}"));
                }
            },
            Tok::Era => out.push_str("A.D."),
            Tok::Lit(s) => out.push_str(s),
        }
    }
    Ok(out)
}

struct Reader<'a> {
    chars: &'a [char],
    pos: usize,
}

impl Reader<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let n = self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let mut v: u32 = 0;
        for c in &self.chars[self.pos..self.pos + n] {
            v = v.checked_mul(10)?.checked_add(c.to_digit(10)?)?;
        }
        self.pos += n;
        Some(v)
    }

    fn word(&mut self, words: &[&str], abbreviated: bool) -> Option<usize> {
        let rest: String = self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .collect();
        let rest = rest.to_lowercase();
        // Try full names before abbreviations so "May" and "March" both work.
        for (i, w) in words.iter().enumerate() {
            let w = if abbreviated {
                w.get(..3).unwrap_or(w)
            } else {
                w
            };
            if rest.starts_with(&w.to_lowercase()) {
                self.pos += w.chars().count();
                return Some(i);
            }
        }
        None
    }

    fn eat(&mut self, c: char) -> bool {
        if self
            .chars
            .get(self.pos)
            .is_some_and(|x| x.eq_ignore_ascii_case(&c))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn offset(&mut self) -> Option<FixedOffset> {
        if self.eat('Z') {
            return FixedOffset::east_opt(0);
        }
        let sign = match self.chars.get(self.pos) {
            Some('+') => 1,
            Some('-') | Some('\u{2212}') => -1,
            _ => return None,
        };
        self.pos += 1;
        let h = self.digits(1, 2)?;
        let mut m = 0;
        if self.eat(':') {
            m = self.digits(2, 2)?;
        } else if let Some(mm) = self.digits(2, 2) {
            m = mm;
        }
        if h > 14 || m > 59 {
            return None;
        }
        FixedOffset::east_opt(sign * (h as i32 * 3600 + m as i32 * 60))
    }
}

/// Read `input` with a .NET format string (like `DateTime.ParseExact`).
pub(crate) fn parse_exact(input: &str, format: &str) -> Result<Stamp, String> {
    let (toks, _) = tokenize(format)?;
    let chars: Vec<char> = input.chars().collect();
    let mut r = Reader {
        chars: &chars,
        pos: 0,
    };
    let mismatch = || format!("'{input}' does not match the date format '{format}'");
    let (mut year, mut month, mut day) = (1i32, 1u32, 1u32);
    let (mut hour, mut minute, mut second, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut zone = Zone::Unspecified;
    for (index, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Year(n) => {
                let (min, max) = match n {
                    1 => (1, 2),
                    2 => (2, 2),
                    n => ((*n).max(4), (*n).max(4)),
                };
                let y = r.digits(min, max).ok_or_else(mismatch)?;
                year = if *n <= 2 {
                    // .NET's two-digit year window ends at 2049.
                    if y < 50 {
                        2000 + y as i32
                    } else {
                        1900 + y as i32
                    }
                } else {
                    i32::try_from(y).map_err(|_| mismatch())?
                };
            }
            Tok::Month(n) if *n <= 2 => {
                month = r.digits(*n, 2).ok_or_else(mismatch)?;
            }
            Tok::Month(_) => {
                let full = r.word(&MONTHS, false);
                let i = match full {
                    Some(i) => i,
                    None => r.word(&MONTHS, true).ok_or_else(mismatch)?,
                };
                month = i as u32 + 1;
            }
            Tok::Day(n) => day = r.digits((*n).min(2), 2).ok_or_else(mismatch)?,
            Tok::DayName(_) => {
                if r.word(&DAYS, false).is_none() {
                    r.word(&DAYS, true).ok_or_else(mismatch)?;
                }
            }
            Tok::Hour24(n) | Tok::Hour12(n) => hour = r.digits(*n, 2).ok_or_else(mismatch)?,
            Tok::Minute(n) => minute = r.digits(*n, 2).ok_or_else(mismatch)?,
            Tok::Second(n) => second = r.digits(*n, 2).ok_or_else(mismatch)?,
            Tok::Fraction { digits, optional } => {
                let start = r.pos;
                let min = if *optional { 0 } else { *digits };
                r.digits(min, *digits).ok_or_else(mismatch)?;
                let read: String = chars[start..r.pos].iter().collect();
                let padded = format!("{read:0<9}");
                nanos = padded.get(..9).and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            Tok::AmPm(n) => {
                if r.eat('A') {
                    pm = Some(false);
                } else if r.eat('P') {
                    pm = Some(true);
                } else {
                    return Err(mismatch());
                }
                if *n == 2 && !r.eat('M') {
                    return Err(mismatch());
                }
            }
            Tok::Offset(_) => {
                zone = Zone::Offset(r.offset().ok_or_else(mismatch)?);
            }
            Tok::Kind => {
                if r.chars.get(r.pos) == Some(&'Z') || r.chars.get(r.pos) == Some(&'z') {
                    r.pos += 1;
                    zone = Zone::Utc;
                } else if matches!(r.chars.get(r.pos), Some('+' | '-' | '\u{2212}')) {
                    zone = Zone::Offset(r.offset().ok_or_else(mismatch)?);
                }
            }
            Tok::Era => {
                for c in "A.D.".chars() {
                    if !r.eat(c) {
                        return Err(mismatch());
                    }
                }
            }
            Tok::Lit(s) => {
                // As in .NET, the point before an optional fraction (`.FFF`)
                // may be absent along with the fraction.
                let optional_point = s.ends_with('.')
                    && matches!(
                        toks.get(index + 1),
                        Some(Tok::Fraction { optional: true, .. })
                    );
                let count = s.chars().count();
                for (j, c) in s.chars().enumerate() {
                    if !r.eat(c) {
                        if optional_point && j + 1 == count {
                            break;
                        }
                        return Err(mismatch());
                    }
                }
                // A literal Z (as in yyyyMMddHHmmss.fZ) means UTC.
                if s.ends_with('Z') && zone == Zone::Unspecified {
                    zone = Zone::Utc;
                }
            }
        }
    }
    if r.pos < chars.len() {
        let rest: String = chars[r.pos..].iter().collect();
        return Err(format!(
            "'{input}' has unexpected text '{rest}' after the date format '{format}'"
        ));
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        format!("'{input}' is not a valid date (year {year}, month {month}, day {day})")
    })?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
        .ok_or_else(|| format!("'{input}' is not a valid time of day"))?;
    Ok(Stamp {
        local: date.and_time(time),
        zone,
    })
}

/// Formats tried, in order, when a function takes a date without a format.
const FLEXIBLE: &[&str] = &[
    "yyyy-MM-ddTHH:mm:ss.FFFFFFFK",
    "yyyy-MM-ddTHH:mmK",
    "yyyy-MM-dd HH:mm:ss.FFFFFFFK",
    "yyyy-MM-dd HH:mmK",
    "yyyy-MM-ddK",
    "M/d/yyyy h:mm:ss tt",
    "M/d/yyyy h:mm tt",
    "M/d/yyyy H:mm:ss",
    "M/d/yyyy H:mm",
    "M/d/yyyy",
    "yyyyMMddHHmmss.FFFFFFFK",
    "yyyyMMddHHmmssK",
    "yyyyMMddK",
    "dddd, MMMM d, yyyy h:mm:ss tt",
    "dddd, MMMM d, yyyy",
    "MMMM d, yyyy",
    "d MMMM yyyy",
];

/// Read a date in any common form: ISO 8601 (with or without time and
/// offset, e.g. `2012-03-16-07:00`), `M/d/yyyy h:mm:ss tt`, LDAP generalized
/// time, RFC 2822 and long English dates.
pub(crate) fn parse_flexible(input: &str) -> Result<Stamp, String> {
    let s = input.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Stamp {
            local: dt.naive_local(),
            zone: Zone::Offset(*dt.offset()),
        });
    }
    for f in FLEXIBLE {
        if let Ok(stamp) = parse_exact(s, f) {
            return Ok(stamp);
        }
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc2822(s) {
        return Ok(Stamp {
            local: dt.naive_local(),
            zone: Zone::Offset(*dt.offset()),
        });
    }
    Err(format!(
        "'{input}' is not a date; use ISO 8601 such as 2024-05-31T08:00:00Z, or M/d/yyyy h:mm:ss tt"
    ))
}

/// 100-nanosecond ticks between 1601-01-01 UTC (Active Directory's epoch)
/// and a UTC reading.
pub(crate) fn to_filetime(utc: NaiveDateTime) -> Option<i64> {
    let epoch = NaiveDate::from_ymd_opt(1601, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let d = utc.signed_duration_since(epoch);
    let ticks = i128::from(d.num_seconds()) * 10_000_000 + i128::from(d.subsec_nanos()) / 100;
    i64::try_from(ticks).ok()
}

/// The inverse of [`to_filetime`].
pub(crate) fn from_filetime(ticks: i64) -> Option<NaiveDateTime> {
    let epoch = NaiveDate::from_ymd_opt(1601, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let secs = ticks.div_euclid(10_000_000);
    let rest = ticks.rem_euclid(10_000_000);
    epoch
        .checked_add_signed(TimeDelta::try_seconds(secs)?)?
        .checked_add_signed(TimeDelta::nanoseconds(rest * 100))
}
