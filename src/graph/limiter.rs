//! The request-rate ceiling (`graph.max_requests_per_second`), shared by every clone of the
//! Graph client; `Retry-After` pauses it for everyone.

use std::time::Duration;

use tokio::time::Instant;

/// The request-rate ceiling: a sliding window allowing at most `n = max(1, ⌊rate⌋)` requests
/// in any window of `n / rate` seconds (for a whole-number rate: at most `rate` requests in any
/// one second, in bursts of up to `rate`). Each caller reserves its send time under a lock and
/// sleeps outside it, so callers are served in arrival order and the lock is never held across
/// a wait. Shared by every clone of the client, the token request excepted (another service).
#[derive(Debug)]
pub struct RateLimiter {
    /// Requests allowed per window.
    n: usize,
    /// The window.
    window: Duration,
    /// Send times of the last `n` requests (non-decreasing).
    slots: std::sync::Mutex<std::collections::VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per second on average.
    pub fn new(per_second: f64) -> RateLimiter {
        let per_second = per_second.clamp(0.001, 1e6);
        let n = per_second.floor().max(1.0);
        RateLimiter {
            n: n as usize,
            window: Duration::from_secs_f64(n / per_second),
            slots: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Reserves the next send time; returns how long the caller must wait before sending.
    pub fn reserve(&self) -> Duration {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = slots.back().copied().unwrap_or(now).max(now);
        if slots.len() >= self.n {
            at = at.max(slots[slots.len() - self.n] + self.window);
        }
        slots.push_back(at);
        while slots.len() > self.n {
            slots.pop_front();
        }
        at.saturating_duration_since(now)
    }

    /// Waits for the next send time.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every request back until `d` from now (Graph said `Retry-After`); after that,
    /// requests resume evenly spaced at the ceiling rate rather than in a burst.
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let step = self.window / self.n as u32;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.back().is_some_and(|b| *b >= until) {
            return;
        }
        // As if the last `n` requests had gone out one step apart, the next one due at `until`:
        // slot k = until - window + (k - 1) * step.
        slots.clear();
        let base = until.checked_sub(self.window).unwrap_or(until);
        for k in 0..self.n as u32 {
            slots.push_back(base + step * k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limiter_allows_at_most_the_rate_in_any_second() {
        let l = RateLimiter::new(4.0);
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..10 {
            l.acquire().await;
            at.push(t0.elapsed().as_millis());
        }
        assert_eq!(at, [0, 0, 0, 0, 1000, 1000, 1000, 1000, 2000, 2000]);
        // Idle time frees the window again, never more than one window's worth.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t1 = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert_eq!(t1.elapsed().as_millis(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_limiter_for_everyone_then_paces() {
        let l = RateLimiter::new(4.0);
        l.acquire().await;
        let t0 = Instant::now();
        l.pause_for(Duration::from_millis(1500));
        let mut at = Vec::new();
        for _ in 0..3 {
            l.acquire().await;
            at.push(t0.elapsed().as_millis());
        }
        assert_eq!(at, [1500, 1750, 2000], "no burst right after a pause");
    }

    #[test]
    fn fractional_rates() {
        let l = RateLimiter::new(0.5);
        assert_eq!(l.reserve(), Duration::ZERO);
        let w = l.reserve();
        assert!(
            w > Duration::from_millis(1900) && w <= Duration::from_secs(2),
            "{w:?}"
        );
        let l = RateLimiter::new(2.5);
        let waits: Vec<u128> = (0..5).map(|_| l.reserve().as_millis()).collect();
        assert!(waits[..2].iter().all(|w| *w == 0), "{waits:?}");
        assert!(
            (795..=800).contains(&waits[2]) && (1595..=1600).contains(&waits[4]),
            "{waits:?}"
        );
    }
}
