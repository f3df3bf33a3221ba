//! Wall-clock time, injectable, and the measured offset to the server's clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock used for `iat`/`exp` (before skew correction).
///
/// Cache lifetimes never use it: they run on Tokio's monotonic clock. Inject another
/// implementation to test a host whose clock is wrong.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system clock shifted by a fixed number of seconds: simulates a host whose clock is off.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    offset_secs: i64,
}

impl OffsetClock {
    /// A clock `offset_secs` ahead of the system clock (negative: behind).
    pub fn new(offset_secs: i64) -> Self {
        Self { offset_secs }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        let d = Duration::from_secs(self.offset_secs.unsigned_abs());
        let now = SystemTime::now();
        if self.offset_secs >= 0 {
            now.checked_add(d).unwrap_or(now)
        } else {
            now.checked_sub(d).unwrap_or(now)
        }
    }
}

/// Seconds since the epoch; times before it count as 0.
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Offsets smaller than this are treated as noise (`Date` has one-second resolution).
const SKEW_NOISE_SECS: i64 = 2;

/// The largest offset taken from a `Date` header. A server further off than this is wrong
/// (or hostile: `Date: 31 Dec 9999`); proofs and assertions stay within an hour of local time.
pub(crate) const MAX_SKEW_SECS: i64 = 3600;

/// The server clock minus the local clock, in seconds, learnt from `Date` headers.
#[derive(Debug, Default)]
pub(crate) struct Skew {
    offset: AtomicI64,
    /// The last `Date` value read and the local second it was read in. The same value in the
    /// same local second gives the same offset, so it is not parsed again: a busy client sees
    /// one `Date` per second on every response.
    last_date: std::sync::Mutex<Option<(String, i64)>>,
}

impl Skew {
    /// The current offset estimate.
    pub(crate) fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Local time corrected to the server's clock, in Unix seconds.
    pub(crate) fn server_now(&self, clock: &dyn Clock) -> i64 {
        unix_secs(clock.now()).saturating_add(self.offset())
    }

    /// Records a server `Date` value seen now. Returns true when the estimate moved.
    pub(crate) fn observe_date(&self, clock: &dyn Clock, date: &str) -> bool {
        let local = unix_secs(clock.now());
        if let Ok(mut last) = self.last_date.lock() {
            if matches!(&*last, Some((d, at)) if *at == local && d == date) {
                return false;
            }
            *last = Some((date.to_owned(), local));
        }
        let Ok(server) = httpdate::parse_http_date(date) else {
            return false;
        };
        let raw = unix_secs(server).saturating_sub(local);
        let observed = raw.clamp(-MAX_SKEW_SECS, MAX_SKEW_SECS);
        if observed != raw && self.offset() != observed {
            tracing::warn!(
                offset_secs = raw,
                clamped_to = observed,
                "the server's Date header is more than an hour off the local clock; using an offset of at most one hour"
            );
        }
        let current = self.offset();
        if (observed - current).abs() >= SKEW_NOISE_SECS {
            self.offset.store(observed, Ordering::Relaxed);
            tracing::debug!(offset_secs = observed, "clock skew to the server updated");
            true
        } else {
            false
        }
    }

    /// True when the estimate differs from `used` enough that a time-based refusal is worth
    /// one retry with corrected time.
    pub(crate) fn moved_since(&self, used: i64) -> bool {
        (self.offset() - used).abs() >= SKEW_NOISE_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_headers_set_the_offset_and_ignore_noise() {
        let clock = OffsetClock::new(-600);
        let skew = Skew::default();
        let server_now = httpdate::fmt_http_date(SystemTime::now());
        assert!(skew.observe_date(&clock, &server_now));
        assert!((skew.offset() - 600).abs() <= 1);
        assert!(!skew.observe_date(&clock, &server_now));
        assert!(!skew.observe_date(&clock, "not a date"));
        let corrected = skew.server_now(&clock);
        assert!((corrected - unix_secs(SystemTime::now())).abs() <= 1);
        assert!(skew.moved_since(0));
        assert!(!skew.moved_since(skew.offset()));
    }

    /// A repeated `Date` is skipped only within the local second it was read in: read again
    /// at another local time, the same value gives another offset.
    #[test]
    fn a_repeated_date_is_read_again_when_the_local_time_moved() {
        let skew = Skew::default();
        let server_now = httpdate::fmt_http_date(SystemTime::now());
        assert!(skew.observe_date(&OffsetClock::new(-600), &server_now));
        assert!((skew.offset() - 600).abs() <= 1);
        assert!(skew.observe_date(&OffsetClock::new(-1200), &server_now));
        assert!((skew.offset() - 1200).abs() <= 1);
        assert!(!skew.observe_date(&OffsetClock::new(-1200), &server_now));
    }

    #[test]
    fn a_date_far_off_is_clamped_to_an_hour() {
        let skew = Skew::default();
        assert!(skew.observe_date(&SystemClock, "Fri, 31 Dec 9999 23:59:59 GMT"));
        assert_eq!(skew.offset(), MAX_SKEW_SECS);
        assert!(skew.observe_date(&SystemClock, "Thu, 01 Jan 1970 00:00:00 GMT"));
        assert_eq!(skew.offset(), -MAX_SKEW_SECS);
        let corrected = skew.server_now(&SystemClock);
        assert!((corrected - unix_secs(SystemTime::now()) + MAX_SKEW_SECS).abs() <= 1);
    }
}
