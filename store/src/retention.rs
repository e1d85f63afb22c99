//! Version retention: which earlier contents of a file to keep as they age.
//!
//! The policy thins versions the way Nextcloud's versions app and Time Machine do: every version
//! for the first day, then one per hour for a week, one per day for a month, one per week after
//! that (forever, unless a maximum age is set). Buckets are aligned to absolute time, so a
//! version's fate depends only on its own timestamp and on `now`, never on when thinning last
//! ran. Within a bucket the newest version survives. `now` is a parameter: tests pass the time.

use std::time::Duration;

use crate::types::{Timestamp, VersionId};

const HOUR: i64 = 3_600 * 1_000_000_000;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// How long each tier lasts, measured from `now` back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep every version younger than this.
    pub keep_all: Duration,
    /// Then one per hour until this age.
    pub hourly_until: Duration,
    /// Then one per day until this age.
    pub daily_until: Duration,
    /// Then one per week; versions older than this (if set) are dropped.
    pub max_age: Option<Duration>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_all: Duration::from_secs(24 * 3600),
            hourly_until: Duration::from_secs(7 * 24 * 3600),
            daily_until: Duration::from_secs(30 * 24 * 3600),
            max_age: None,
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The newest a version can be and still be up for thinning at `now`: younger ones are all
/// kept, and they never decide the fate of older ones, so [`expired`] needs only the versions
/// created at or before this (a file saved every minute would otherwise read its whole day of
/// versions at each save).
pub fn thinning_horizon(policy: &RetentionPolicy, now: Timestamp) -> Timestamp {
    Timestamp(now.0.saturating_sub(nanos(policy.keep_all)))
}

/// Given one file's versions (any order), return the ids to delete at time `now`.
pub fn expired(
    policy: &RetentionPolicy,
    versions: &[(VersionId, Timestamp)],
    now: Timestamp,
) -> Vec<VersionId> {
    let mut sorted: Vec<(VersionId, Timestamp)> = versions.to_vec();
    // Newest first, so the first version seen in a bucket is the one kept.
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let mut out = Vec::new();
    for (id, at) in sorted {
        let age = now.0.saturating_sub(at.0);
        if age < nanos(policy.keep_all) {
            continue;
        }
        if policy.max_age.is_some_and(|max| age >= nanos(max)) {
            out.push(id);
            continue;
        }
        let step = if age < nanos(policy.hourly_until) {
            HOUR
        } else if age < nanos(policy.daily_until) {
            DAY
        } else {
            WEEK
        };
        let bucket = (step, at.0.div_euclid(step));
        if seen.contains(&bucket) {
            out.push(id);
        } else {
            seen.push(bucket);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions given as ages before `now` in minutes; the result lists the ages deleted.
    fn check(policy: &RetentionPolicy, ages_min: &[i64], expect_deleted_min: &[i64]) {
        let now = Timestamp(1_000 * WEEK);
        let versions: Vec<(VersionId, Timestamp)> = ages_min
            .iter()
            .enumerate()
            .map(|(i, age)| (VersionId(i as i64), Timestamp(now.0 - age * 60 * 1_000_000_000)))
            .collect();
        let mut got: Vec<i64> =
            expired(policy, &versions, now).into_iter().map(|id| ages_min[id.0 as usize]).collect();
        got.sort();
        let mut want = expect_deleted_min.to_vec();
        want.sort();
        assert_eq!(got, want, "ages {ages_min:?}");
    }

    #[test]
    fn keeps_everything_for_a_day() {
        let p = RetentionPolicy::default();
        check(&p, &[1, 2, 3, 60, 61, 23 * 60 + 59], &[]);
    }

    #[test]
    fn hourly_for_a_week() {
        let p = RetentionPolicy::default();
        // Three versions inside one hour bucket two days back: the newest of them survives.
        // `now` is at an hour boundary, so ages 48h+1m .. 48h+59m share a bucket.
        check(&p, &[48 * 60 + 10, 48 * 60 + 20, 48 * 60 + 30, 49 * 60 + 30], &[48 * 60 + 20, 48 * 60 + 30]);
    }

    #[test]
    fn daily_for_a_month_then_weekly() {
        let p = RetentionPolicy::default();
        let day = 24 * 60;
        // Two on day 10 (same calendar bucket), one on day 11: one of day 10 goes.
        check(&p, &[10 * day + 60, 10 * day + 120, 11 * day + 60], &[10 * day + 120]);
        // Weekly beyond a month; `now` is at a week boundary.
        check(&p, &[40 * day + 1, 41 * day + 1, 48 * day + 1], &[41 * day + 1]);
    }

    #[test]
    fn max_age_drops_old_versions() {
        let p = RetentionPolicy { max_age: Some(Duration::from_secs(90 * 24 * 3600)), ..Default::default() };
        check(&p, &[1, 89 * 24 * 60, 91 * 24 * 60, 400 * 24 * 60], &[91 * 24 * 60, 400 * 24 * 60]);
    }

    #[test]
    fn versions_younger_than_the_horizon_change_nothing() {
        let p = RetentionPolicy::default();
        let now = Timestamp(1_000 * WEEK);
        let versions: Vec<(VersionId, Timestamp)> =
            (0..2_000).map(|i| (VersionId(i), Timestamp(now.0 - i * 7 * 60 * 1_000_000_000))).collect();
        let horizon = thinning_horizon(&p, now);
        let old: Vec<_> = versions.iter().filter(|v| v.1 <= horizon).copied().collect();
        assert!(old.len() < versions.len() && !old.is_empty());
        let all = expired(&p, &versions, now);
        assert!(!all.is_empty());
        assert_eq!(expired(&p, &old, now), all);
    }

    #[test]
    fn result_depends_only_on_timestamps() {
        // Thinning twice gives the same answer as thinning once.
        let p = RetentionPolicy::default();
        let now = Timestamp(1_000 * WEEK);
        let versions: Vec<(VersionId, Timestamp)> =
            (0..500).map(|i| (VersionId(i), Timestamp(now.0 - i * 37 * 60 * 1_000_000_000))).collect();
        let first = expired(&p, &versions, now);
        let kept: Vec<_> = versions.iter().filter(|v| !first.contains(&v.0)).copied().collect();
        assert!(expired(&p, &kept, now).is_empty());
        assert!(kept.len() < versions.len());
    }
}
