//! Slowing down password guessing, per account and per client.
//!
//! Two complementary defences, both pure so they test without a clock:
//! - [`LockoutPolicy`] turns an account's stored [`FailureRecord`] into a temporary lock that doubles
//!   with each further failure. It protects one account against many clients.
//! - [`LoginThrottle`] is an in-memory token bucket per key (a client address, or "address|email").
//!   It protects every account against one client, and never locks anyone else out.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// An account's recent failed sign-ins, as stored with the account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Failures since the last success (or since they were forgotten).
    pub failures: u32,
    /// Sign-in is refused until then, whatever the password.
    pub locked_until: Option<OffsetDateTime>,
    /// When the most recent failure happened: the whole count is forgotten a while after it.
    pub last_failure_at: Option<OffsetDateTime>,
}

/// How failures turn into locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed before any lock; the next failure locks.
    pub free_attempts: u32,
    /// The first lock's length; each further failure doubles it.
    pub base_lock: Duration,
    /// The longest lock, so that an attacker cannot lock an account out for days.
    pub max_lock: Duration,
    /// A record whose last failure is this old starts again from zero.
    pub forget_after: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            base_lock: Duration::minutes(1),
            max_lock: Duration::hours(1),
            forget_after: Duration::hours(24),
        }
    }
}

impl LockoutPolicy {
    /// Until when the account is locked at `now`, or `None` if a sign-in may be tried.
    pub fn is_locked(&self, record: &FailureRecord, now: OffsetDateTime) -> Option<OffsetDateTime> {
        record.locked_until.filter(|until| *until > now)
    }

    /// The record after one more failed sign-in at `now`.
    ///
    /// After `free_attempts` failures, each further one locks the account for `base_lock`, doubled for
    /// every failure beyond the first lock, up to `max_lock`. The count is forgotten as a whole once its
    /// most recent failure is `forget_after` old (one counter cannot age failures one by one).
    /// Callers check [`LockoutPolicy::is_locked`] first and do not verify (or record) attempts made
    /// during a lock.
    pub fn record_failure(&self, record: &FailureRecord, now: OffsetDateTime) -> FailureRecord {
        let previous = if self.is_forgotten(record, now) { 0 } else { record.failures };
        let failures = previous.saturating_add(1);
        FailureRecord {
            failures,
            locked_until: self.lock_length(failures).map(|length| now.saturating_add(length)),
            last_failure_at: Some(now),
        }
    }

    /// The record after a successful sign-in: nothing remembered.
    pub fn record_success(&self) -> FailureRecord {
        FailureRecord::default()
    }

    fn is_forgotten(&self, record: &FailureRecord, now: OffsetDateTime) -> bool {
        record.last_failure_at.is_none_or(|last| now - last >= self.forget_after)
    }

    /// The lock that the `failures`-th failure earns, if any.
    fn lock_length(&self, failures: u32) -> Option<Duration> {
        let doublings = failures.checked_sub(self.free_attempts)?.checked_sub(1)?;
        let factor = 1_i32.checked_shl(doublings).filter(|factor| *factor > 0);
        let length = factor.and_then(|factor| self.base_lock.checked_mul(factor)).unwrap_or(self.max_lock);
        Some(length.min(self.max_lock))
    }
}

/// Refused by the [`LoginThrottle`]: the key may try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many sign-in attempts; retry in {} s", self.whole_seconds())]
pub struct RetryAfter(pub std::time::Duration);

impl RetryAfter {
    /// The wait rounded up to whole seconds, as a `Retry-After` header wants it.
    pub fn whole_seconds(&self) -> u64 {
        let seconds = self.0.as_secs();
        if self.0.subsec_nanos() > 0 { seconds.saturating_add(1) } else { seconds }
    }
}

/// A key's bucket: how many attempts it has in hand, as of `updated`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A per-key token bucket limiter for sign-in attempts, kept in memory.
///
/// Each key may make `burst` attempts at once and then `per_minute` a minute. At most `max_keys` keys
/// are tracked, so that a client inventing keys cannot grow memory without bound: when the table is
/// full, keys whose bucket has refilled (which hold no information) are dropped first, then the ones
/// idle longest.
#[derive(Debug)]
pub struct LoginThrottle {
    per_second: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl LoginThrottle {
    /// The default cap on tracked keys.
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

    /// A throttle allowing `burst` attempts at once and `per_minute` a minute after that (each at least 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
            max_keys: Self::DEFAULT_MAX_KEYS,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The same throttle tracking at most `max_keys` keys (at least 1).
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// Takes one attempt from `key`'s bucket at `now`, or says how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        let mut buckets = self.lock();
        if !buckets.contains_key(key) {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, updated: now });
        *bucket = self.refilled(*bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.per_second;
        Err(RetryAfter(std::time::Duration::try_from_secs_f64(wait).unwrap_or(std::time::Duration::MAX)))
    }

    /// How many keys are tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.lock().len()
    }

    /// A poisoned lock only means another thread panicked mid-update; the buckets are still usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        Bucket { tokens, updated: now.max(bucket.updated) }
    }

    /// Frees at least an eighth of the table when it is full, so the scan is paid once per many inserts.
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        if buckets.len() < self.max_keys {
            return;
        }
        buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < self.burst);
        let target = self.max_keys - (self.max_keys / 8).max(1);
        if buckets.len() > target {
            let mut times: Vec<Instant> = buckets.values().map(|bucket| bucket.updated).collect();
            let excess = buckets.len() - target;
            let (_, cutoff, _) = times.select_nth_unstable(excess - 1);
            let cutoff = *cutoff;
            buckets.retain(|_, bucket| bucket.updated > cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01 12:00 UTC.
    const START: OffsetDateTime = match OffsetDateTime::from_unix_timestamp(1_735_732_800) {
        Ok(start) => start,
        Err(_) => OffsetDateTime::UNIX_EPOCH,
    };

    fn fail_times(policy: &LockoutPolicy, count: u32, now: OffsetDateTime) -> FailureRecord {
        (0..count).fold(FailureRecord::default(), |record, _| policy.record_failure(&record, now))
    }

    #[test]
    fn the_free_attempts_do_not_lock() {
        let policy = LockoutPolicy::default();
        let record = fail_times(&policy, 5, START);
        assert_eq!(record.failures, 5);
        assert_eq!(policy.is_locked(&record, START), None);
        assert_eq!(record.last_failure_at, Some(START));
    }

    #[test]
    fn further_failures_lock_for_doubling_times_up_to_the_maximum() {
        let policy = LockoutPolicy::default();
        let mut record = fail_times(&policy, 5, START);
        let mut now = START;
        for expected_minutes in [1, 2, 4, 8, 16, 32, 60, 60, 60] {
            record = policy.record_failure(&record, now);
            let until = policy.is_locked(&record, now);
            assert_eq!(until, Some(now + Duration::minutes(expected_minutes)));
            now = until.unwrap_or(now);
        }
    }

    #[test]
    fn a_lock_ends_when_its_time_is_up() {
        let policy = LockoutPolicy::default();
        let record = fail_times(&policy, 6, START);
        assert!(policy.is_locked(&record, START + Duration::seconds(59)).is_some());
        assert_eq!(policy.is_locked(&record, START + Duration::minutes(1)), None);
    }

    #[test]
    fn failures_are_forgotten_a_day_after_the_last_one() {
        let policy = LockoutPolicy::default();
        let record = fail_times(&policy, 9, START);
        let later = START + Duration::hours(24);
        let after = policy.record_failure(&record, later);
        assert_eq!(after.failures, 1);
        assert_eq!(policy.is_locked(&after, later), None);
        let not_yet = policy.record_failure(&record, later - Duration::seconds(1));
        assert_eq!(not_yet.failures, 10);
        assert!(policy.is_locked(&not_yet, later - Duration::seconds(1)).is_some());
    }

    #[test]
    fn success_resets_everything() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.record_success(), FailureRecord::default());
        let record = policy.record_failure(&policy.record_success(), START);
        assert_eq!(record.failures, 1);
    }

    #[test]
    fn huge_counts_stay_at_the_maximum_lock() {
        let policy = LockoutPolicy::default();
        let record =
            FailureRecord { failures: u32::MAX - 1, locked_until: None, last_failure_at: Some(START) };
        let next = policy.record_failure(&record, START);
        assert_eq!(next.failures, u32::MAX);
        assert_eq!(policy.is_locked(&next, START), Some(START + Duration::hours(1)));
        let saturated = policy.record_failure(&next, START);
        assert_eq!(saturated.failures, u32::MAX);
    }

    #[test]
    fn a_record_round_trips_through_serde() {
        let policy = LockoutPolicy::default();
        let record = fail_times(&policy, 7, START);
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<FailureRecord>(&json).unwrap(), record);
    }

    #[test]
    fn the_throttle_refuses_after_the_burst_and_recovers() {
        let throttle = LoginThrottle::new(6, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.check("198.51.100.7", now), Ok(()));
        }
        let refused = throttle.check("198.51.100.7", now).unwrap_err();
        assert_eq!(refused.whole_seconds(), 10, "6 a minute is one every 10 s");
        assert!(throttle.check("203.0.113.9", now).is_ok(), "other keys are unaffected");
        let later = now + std::time::Duration::from_secs(10);
        assert_eq!(throttle.check("198.51.100.7", later), Ok(()));
        assert!(throttle.check("198.51.100.7", later).is_err());
    }

    #[test]
    fn the_retry_time_counts_the_partial_refill() {
        let throttle = LoginThrottle::new(60, 1);
        let now = Instant::now();
        assert!(throttle.check("k", now).is_ok());
        let refused = throttle.check("k", now + std::time::Duration::from_millis(400)).unwrap_err();
        let wait = refused.0.as_secs_f64();
        assert!((wait - 0.6).abs() < 1e-6, "{wait}");
        assert_eq!(refused.whole_seconds(), 1);
    }

    #[test]
    fn the_throttle_never_tracks_more_than_its_cap() {
        let throttle = LoginThrottle::new(1, 1).with_max_keys(64);
        let start = Instant::now();
        for i in 0..1_000_u64 {
            let now = start + std::time::Duration::from_millis(i);
            assert!(throttle.check(&format!("attacker-{i}"), now).is_ok());
            assert!(throttle.tracked_keys() <= 64);
        }
        // The most recent keys are still remembered, so they stay refused.
        let now = start + std::time::Duration::from_millis(1_000);
        assert!(throttle.check("attacker-999", now).is_err());
    }

    #[test]
    fn refilled_buckets_are_dropped_before_active_ones() {
        let throttle = LoginThrottle::new(60, 1).with_max_keys(2);
        let start = Instant::now();
        assert!(throttle.check("idle", start).is_ok());
        let later = start + std::time::Duration::from_secs(5);
        assert!(throttle.check("active", later).is_ok());
        assert!(throttle.check("newcomer", later).is_ok());
        assert_eq!(throttle.tracked_keys(), 2);
        assert!(throttle.check("active", later).is_err(), "the active key kept its empty bucket");
    }
}
