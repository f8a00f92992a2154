//! Which route of a gateway takes a request: conditions, condition strength and weights,
//! as Vamp's HAProxy layout decides it (spec §4.2.2), for the embedded router.
//!
//! Routes with a condition are tried in order; the first whose condition the request meets
//! takes it with probability `condition_strength`, else the request goes to the weighted pool.
//! Requests that meet no condition go to the pool, where routes share by weight (a route at
//! 0% takes nothing from the pool). Both draws are smooth weighted round-robin
//! ([`SmoothWeighted`]), so the shares are exact over every cycle, not only on average.
//!
//! ```
//! use vamp_gateway::condition::{Condition, Headers};
//! use vamp_gateway::select::{Route, Selector};
//!
//! // The worked example of spec §4.2.3: 90/10, and beta testers always get 1.1.0.
//! let mut sava = Selector::new(vec![
//!     Route::weighted("sava:1.0.0", 90),
//!     Route::weighted("sava:1.1.0", 10)
//!         .with_condition(Condition::parse("has cookie beta").unwrap(), 100),
//! ]);
//! let beta = Headers::from([("Cookie", "beta=1")]);
//! assert!((0..50).all(|_| sava.pick(&beta) == Some(1)));
//! let anyone = Headers::default();
//! let to_new = (0..100).filter(|_| sava.pick(&anyone) == Some(1)).count();
//! assert_eq!(to_new, 10);
//! ```

use crate::balance::SmoothWeighted;
use crate::condition::{Condition, Request, cookies};

/// One route as the selector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route's name (for callers; the selector answers with indexes).
    pub name: String,
    /// Its share of the weighted pool, in percent.
    pub weight: u8,
    /// Requests meeting it go to this route first…
    pub condition: Option<Condition>,
    /// …with this probability, in percent (the rest go to the pool).
    pub condition_strength: u8,
}

impl Route {
    /// A route without a condition.
    pub fn weighted(name: impl Into<String>, weight: u8) -> Self {
        Route {
            name: name.into(),
            weight,
            condition: None,
            condition_strength: 0,
        }
    }

    /// The same route with a condition of `strength` percent.
    pub fn with_condition(self, condition: Condition, strength: u8) -> Self {
        Route {
            condition: Some(condition),
            condition_strength: strength,
            ..self
        }
    }
}

/// Picks routes for requests; one per gateway.
#[derive(Debug, Clone)]
pub struct Selector {
    routes: Vec<Route>,
    pool: SmoothWeighted,
    /// Per route with a condition: a draw between the route (0) and the pool (1).
    strength: Vec<Option<SmoothWeighted>>,
}

impl Selector {
    /// A selector over `routes`, in order.
    pub fn new(routes: Vec<Route>) -> Self {
        let pool = SmoothWeighted::new(routes.iter().map(|r| u32::from(r.weight)));
        let strength = routes
            .iter()
            .map(|r| {
                r.condition.as_ref().map(|_| {
                    let s = u32::from(r.condition_strength.min(100));
                    SmoothWeighted::new([s, 100 - s])
                })
            })
            .collect();
        Selector {
            routes,
            pool,
            strength,
        }
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The index of the route that takes `request`, or `None` when no route would (no matching
    /// condition took it and every weight is 0%).
    pub fn pick(&mut self, request: &impl Request) -> Option<usize> {
        self.by_condition(request).or_else(|| self.pool.pick())
    }

    /// [`pick`](Self::pick) for a sticky gateway (`sticky: route`), whose clients carry the
    /// route they were given in cookie `cookie`, as HAProxy's `cookie … insert` on the weighted
    /// pool does (spec §4.2.2):
    ///
    /// - conditions come first (they are the frontend's rules, before the pool);
    /// - a request pinned to a route still in the table goes there, whatever the weights —
    ///   even 0%, as HAProxy still serves persistent requests on a drained server;
    /// - otherwise the weights decide and [`Pick::pin`] asks the caller to set the cookie.
    ///
    /// ```
    /// use vamp_gateway::condition::Headers;
    /// use vamp_gateway::select::{Route, Selector};
    ///
    /// let mut s = Selector::new(vec![Route::weighted("v1", 0), Route::weighted("v2", 100)]);
    /// let pinned = Headers::from([("Cookie", "o_shop=v1")]);
    /// assert_eq!(s.pick_sticky(&pinned, "o_shop").map(|p| (p.route, p.pin)), Some((0, false)));
    /// let fresh = Headers::default();
    /// assert_eq!(s.pick_sticky(&fresh, "o_shop").map(|p| (p.route, p.pin)), Some((1, true)));
    /// ```
    pub fn pick_sticky(&mut self, request: &impl Request, cookie: &str) -> Option<Pick> {
        if let Some(route) = self.by_condition(request) {
            return Some(Pick { route, pin: false });
        }
        let pinned = cookies(request, cookie)
            .find_map(|name| self.routes.iter().position(|r| r.name == name));
        match pinned {
            Some(route) => Some(Pick { route, pin: false }),
            None => self.pool.pick().map(|route| Pick { route, pin: true }),
        }
    }

    /// The route the first condition `request` meets sends it to, if its strength draw says so.
    fn by_condition(&mut self, request: &impl Request) -> Option<usize> {
        let first = self
            .routes
            .iter()
            .position(|r| r.condition.as_ref().is_some_and(|c| c.matches(request)))?;
        let takes = self.strength[first].as_mut().and_then(SmoothWeighted::pick);
        (takes == Some(0)).then_some(first)
    }
}

/// The route [`Selector::pick_sticky`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The route's index.
    pub route: usize,
    /// Whether the weights chose it: the response should set the sticky cookie to its name.
    pub pin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Headers;

    fn cond(text: &str) -> Condition {
        Condition::parse(text).unwrap()
    }

    fn tally(s: &mut Selector, r: &Headers, n: usize) -> Vec<usize> {
        let mut out = vec![0; s.routes().len()];
        for _ in 0..n {
            out[s.pick(r).unwrap()] += 1;
        }
        out
    }

    #[test]
    fn weights_split_the_pool_exactly() {
        let mut s = Selector::new(vec![Route::weighted("a", 99), Route::weighted("b", 1)]);
        assert_eq!(tally(&mut s, &Headers::default(), 10_000), [9_900, 100]);
    }

    #[test]
    fn strength_sends_that_share_of_matching_requests_and_the_rest_to_the_pool() {
        let mut s = Selector::new(vec![
            Route::weighted("a", 100),
            Route::weighted("b", 0).with_condition(cond("has cookie beta"), 30),
        ]);
        let beta = Headers::from([("Cookie", "beta=1")]);
        assert_eq!(tally(&mut s, &beta, 1_000), [700, 300]);
        // Others never reach b: its weight is 0%.
        assert_eq!(tally(&mut s, &Headers::default(), 1_000), [1_000, 0]);
    }

    #[test]
    fn the_first_matching_condition_decides() {
        let mut s = Selector::new(vec![
            Route::weighted("a", 100),
            Route::weighted("b", 0).with_condition(cond("has header X-Canary"), 100),
            Route::weighted("c", 0).with_condition(cond("has cookie beta"), 100),
        ]);
        let both = Headers::from([("X-Canary", "1"), ("Cookie", "beta=1")]);
        assert_eq!(tally(&mut s, &both, 100), [0, 100, 0]);
        let cookie = Headers::from([("Cookie", "beta=1")]);
        assert_eq!(tally(&mut s, &cookie, 100), [0, 0, 100]);
    }

    #[test]
    fn a_zero_strength_condition_changes_nothing() {
        let mut s = Selector::new(vec![
            Route::weighted("a", 50),
            Route::weighted("b", 50).with_condition(cond("has cookie beta"), 0),
        ]);
        let beta = Headers::from([("Cookie", "beta=1")]);
        assert_eq!(tally(&mut s, &beta, 100), [50, 50]);
    }

    #[test]
    fn sticky_clients_keep_their_route_while_new_ones_follow_the_weights() {
        let mut s = Selector::new(vec![Route::weighted("v1", 50), Route::weighted("v2", 50)]);
        let first = s.pick_sticky(&Headers::default(), "o_g").unwrap();
        assert!(first.pin, "a weighted choice asks for the cookie");
        let name = s.routes()[first.route].name.clone();
        // The weights move everything to the other route: the pinned client stays.
        let other = 1 - first.route;
        let mut weights = [0, 0];
        weights[other] = 100;
        let mut s = Selector::new(vec![
            Route::weighted("v1", weights[0]),
            Route::weighted("v2", weights[1]),
        ]);
        let cookie = format!("a=1; o_g={name}");
        let pinned = Headers::from([("Cookie", cookie.as_str())]);
        let stays = Pick {
            route: first.route,
            pin: false,
        };
        assert!((0..10).all(|_| s.pick_sticky(&pinned, "o_g") == Some(stays)));
        // New clients, and clients pinned to a route that is gone, follow the weights.
        let moved = Pick {
            route: other,
            pin: true,
        };
        for r in [Headers::default(), Headers::from([("Cookie", "o_g=v0")])] {
            assert_eq!(s.pick_sticky(&r, "o_g"), Some(moved));
        }
        // Another gateway's cookie is not ours.
        let cookie = format!("o_h={name}");
        let elsewhere = Headers::from([("Cookie", cookie.as_str())]);
        assert_eq!(s.pick_sticky(&elsewhere, "o_g"), Some(moved));
    }

    #[test]
    fn conditions_come_before_the_sticky_cookie() {
        let mut s = Selector::new(vec![
            Route::weighted("v1", 100),
            Route::weighted("v2", 0).with_condition(cond("has header X-Canary"), 100),
        ]);
        let canary = Headers::from([("X-Canary", "1"), ("Cookie", "o_g=v1")]);
        assert_eq!(
            s.pick_sticky(&canary, "o_g"),
            Some(Pick {
                route: 1,
                pin: false
            })
        );
    }

    #[test]
    fn nothing_takes_a_request_when_every_weight_is_zero() {
        let mut s = Selector::new(vec![
            Route::weighted("a", 0),
            Route::weighted("b", 0).with_condition(cond("has cookie beta"), 100),
        ]);
        assert_eq!(s.pick(&Headers::default()), None);
        assert_eq!(s.pick(&Headers::from([("Cookie", "beta=1")])), Some(1));
        assert_eq!(Selector::new(Vec::new()).pick(&Headers::default()), None);
    }
}
