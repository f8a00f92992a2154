//! Weight and condition-strength defaulting (spec §3.5).

use crate::dsl::{DslError, ErrorKind, Mark};
use crate::model::{Map, Percentage, Ref, Route};

/// Fills in missing weights and condition strengths of a gateway's routes.
///
/// Routes without a weight share what the others leave: each gets `floor(left / n)` and the
/// last one the remainder (100 over three routes → 33, 33, 34). So a new cluster's services
/// split evenly, and a service joining routes that already hold 100% gets 0%. Then a route with
/// a condition gets a condition strength of 100% unless it has one, any other 0%. Weights must
/// end up totalling exactly 0% or 100%; else `kind` (`GatewayRouteWeightError` for gateways,
/// `InvalidRouteWeight` for deployments) names `path`.
///
/// ```
/// use vamp_core::engine::default_weights;
/// use vamp_core::dsl::ErrorKind;
/// use vamp_core::model::{Map, Ref, Route};
/// let mut routes: Map<Ref<Route>> = ["a", "b", "c"].iter()
///     .map(|r| (r.to_string(), Ref::Inline(Route::default()))).collect();
/// default_weights(&mut routes, ErrorKind::GatewayRouteWeightError, "routes").unwrap();
/// let w: Vec<u8> = routes.values().map(|r| r.inline().unwrap().weight.unwrap().get()).collect();
/// assert_eq!(w, [33, 33, 34]);
/// ```
pub fn default_weights(
    routes: &mut Map<Ref<Route>>,
    kind: ErrorKind,
    path: &str,
) -> Result<(), DslError> {
    let given: u32 = routes
        .values()
        .filter_map(|r| r.inline().and_then(|r| r.weight))
        .map(|w| u32::from(w.get()))
        .sum();
    let missing: Vec<&String> = routes
        .iter()
        .filter(|(_, r)| r.inline().is_some_and(|r| r.weight.is_none()))
        .map(|(k, _)| k)
        .collect();
    let error = |total: u32| {
        DslError::new(
            kind,
            path,
            Mark::default(),
            format!("route weights total {total}%; they must total 0% or 100%"),
            "set the weights so they add up to 100% (or all to 0%)",
        )
    };
    if given > 100 {
        return Err(error(given));
    }
    let left = 100 - given;
    let n = u32::try_from(missing.len()).unwrap_or(u32::MAX);
    let shares: Vec<(String, u32)> = missing
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let each = left / n.max(1);
            let share = if i + 1 == missing.len() {
                left - each * (n - 1)
            } else {
                each
            };
            ((*k).clone(), share)
        })
        .collect();
    for (key, share) in shares {
        if let Some(Ref::Inline(route)) = routes.get_mut(&key) {
            route.weight = Percentage::new(u8::try_from(share).unwrap_or(100));
        }
    }
    for route in routes.values_mut() {
        if let Ref::Inline(route) = route
            && route.condition_strength.is_none()
        {
            route.condition_strength = Some(if route.condition.is_some() {
                Percentage::FULL
            } else {
                Percentage::ZERO
            });
        }
    }
    let total: u32 = routes
        .values()
        .filter_map(|r| r.inline().and_then(|r| r.weight))
        .map(|w| u32::from(w.get()))
        .sum();
    // Referenced (stored) routes carry their own weights, unknown here; judge only inline ones.
    let all_inline = routes.values().all(|r| r.inline().is_some());
    if all_inline && !routes.is_empty() && total != 0 && total != 100 {
        return Err(error(total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Condition;

    fn routes(weights: &[Option<u8>]) -> Map<Ref<Route>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    format!("r{i}"),
                    Ref::Inline(Route {
                        weight: w.and_then(Percentage::new),
                        ..Route::default()
                    }),
                )
            })
            .collect()
    }

    fn weights(routes: &Map<Ref<Route>>) -> Vec<u8> {
        routes
            .values()
            .map(|r| r.inline().unwrap().weight.unwrap().get())
            .collect()
    }

    #[test]
    fn shares_and_remainders() {
        let cases: &[(&[Option<u8>], &[u8])] = &[
            (&[None], &[100]),
            (&[None, None], &[50, 50]),
            (&[None, None, None], &[33, 33, 34]),
            (&[Some(100), None], &[100, 0]),
            (&[Some(90), None, None], &[90, 5, 5]),
            (&[Some(70), None, None, None], &[70, 10, 10, 10]),
            (&[Some(0), Some(0)], &[0, 0]),
            (
                &[None, None, None, None, None, None, None],
                &[14, 14, 14, 14, 14, 14, 16],
            ),
        ];
        for (input, expected) in cases {
            let mut r = routes(input);
            default_weights(&mut r, ErrorKind::InvalidRouteWeight, "p").unwrap();
            assert_eq!(weights(&r), *expected, "{input:?}");
        }
    }

    #[test]
    fn totals_other_than_0_or_100_fail() {
        for input in [&[Some(60), Some(30)][..], &[Some(80), Some(30), None]] {
            let mut r = routes(input);
            let e =
                default_weights(&mut r, ErrorKind::GatewayRouteWeightError, "routes").unwrap_err();
            assert_eq!(e.kind, ErrorKind::GatewayRouteWeightError);
        }
    }

    #[test]
    fn condition_strength_defaults() {
        let mut r = routes(&[None, None]);
        if let Some(Ref::Inline(route)) = r.get_mut("r0") {
            route.condition = Some(Ref::Inline(Condition {
                definition: "has cookie x".into(),
                ..Condition::default()
            }));
        }
        default_weights(&mut r, ErrorKind::InvalidRouteWeight, "p").unwrap();
        let strength: Vec<u8> = r
            .values()
            .map(|r| r.inline().unwrap().condition_strength.unwrap().get())
            .collect();
        assert_eq!(strength, [100, 0]);
    }
}
