//! Conditions into disjunctive normal form: the alternatives HAProxy's `use_backend … if`
//! lines express, merged and bounded by [`MAX_TERMS`].

use super::*;

/// Merges alternatives that differ in one literal, then drops alternatives that contain
/// another one (absorption). The result is the same function.
pub(super) fn simplify(terms: Vec<Term>) -> Vec<Term> {
    let mut terms = merge(terms);
    let sets: Vec<BTreeSet<(Criterion, bool)>> =
        terms.iter().map(|t| t.iter().cloned().collect()).collect();
    let mut keep = vec![true; terms.len()];
    for i in 0..sets.len() {
        for j in 0..sets.len() {
            if i != j && keep[j] && sets[j].is_subset(&sets[i]) && (sets[j] != sets[i] || j < i) {
                keep[i] = false;
                break;
            }
        }
    }
    let mut k = keep.iter();
    terms.retain(|_| k.next().copied().unwrap_or(true));
    terms
}

/// Pairwise merging (spec §1.7.2): `x a or x !a` becomes `x`, until nothing merges.
pub(super) fn merge(terms: Vec<Term>) -> Vec<Term> {
    let mut sets: Vec<BTreeSet<(Criterion, bool)>> =
        terms.into_iter().map(|t| t.into_iter().collect()).collect();
    'again: loop {
        for i in 0..sets.len() {
            for j in i + 1..sets.len() {
                if sets[i].len() != sets[j].len() {
                    continue;
                }
                let only_i: Vec<_> = sets[i].difference(&sets[j]).collect();
                let only_j: Vec<_> = sets[j].difference(&sets[i]).collect();
                if let ([(a, p)], [(b, q)]) = (only_i.as_slice(), only_j.as_slice())
                    && a == b
                    && p != q
                {
                    let literal = ((*a).clone(), *p);
                    let mut merged = sets[i].clone();
                    merged.remove(&literal);
                    sets.swap_remove(j);
                    sets[i] = merged;
                    sets.dedup();
                    continue 'again;
                }
            }
        }
        break;
    }
    let mut seen = BTreeSet::new();
    sets.into_iter()
        .filter(|s| seen.insert(s.clone()))
        .map(|s| s.into_iter().collect())
        .collect()
}

pub(super) fn to_criteria(e: &Expr<ConditionOperand>) -> Result<Expr<(Criterion, bool)>, AclError> {
    let all = |items: &[Expr<ConditionOperand>]| {
        items.iter().map(to_criteria).collect::<Result<Vec<_>, _>>()
    };
    Ok(match e {
        Expr::Or(items) => Expr::Or(all(items)?),
        Expr::And(items) => Expr::And(all(items)?),
        Expr::Not(inner) => Expr::Not(Box::new(to_criteria(inner)?)),
        Expr::Operand(o) => operand(o)?,
    })
}

pub(super) fn leaf(c: Criterion, positive: bool) -> Expr<(Criterion, bool)> {
    Expr::Operand((c, positive))
}

pub(super) fn operand(o: &ConditionOperand) -> Result<Expr<(Criterion, bool)>, AclError> {
    use ConditionOperand as O;
    Ok(match o {
        O::Host { value, positive } => leaf(
            Criterion::matching("req.hdr(host)", None, "host", value)?,
            *positive,
        ),
        O::UserAgent { value, positive } => {
            let all = crate::condition::user_agent_needles(value)
                .iter()
                .map(|n| {
                    Ok(leaf(
                        Criterion::matching("req.fhdr(User-Agent)", Some("sub"), "user agent", n)?,
                        true,
                    ))
                })
                .collect::<Result<Vec<_>, AclError>>()?;
            let e = if all.len() == 1 {
                all.into_iter().next().unwrap_or(Expr::And(Vec::new()))
            } else {
                Expr::And(all)
            };
            if *positive { e } else { Expr::Not(Box::new(e)) }
        }
        O::Cookie { name, positive } => {
            check_name("cookie", name)?;
            if *positive {
                leaf(Criterion(format!("req.cook({name}) -m found")), true)
            } else {
                leaf(Criterion(format!("req.cook_cnt({name}) eq 0")), true)
            }
        }
        O::Header { name, positive } => {
            check_name("header", name)?;
            let op = if *positive { "gt" } else { "eq" };
            leaf(Criterion(format!("req.hdr_cnt({name}) {op} 0")), true)
        }
        O::CookieContains {
            name,
            value,
            positive,
        } => {
            check_name("cookie", name)?;
            leaf(
                Criterion::matching(
                    &format!("req.cook({name})"),
                    Some("sub"),
                    "cookie value",
                    value,
                )?,
                *positive,
            )
        }
        O::HeaderContains {
            name,
            value,
            positive,
        } => {
            check_name("header", name)?;
            leaf(
                Criterion::matching(
                    &format!("req.fhdr({name})"),
                    Some("sub"),
                    "header value",
                    value,
                )?,
                *positive,
            )
        }
        O::Raw(acl) => leaf(Criterion::literal(acl)?, true),
    })
}

pub(super) type Term = Vec<(Criterion, bool)>;

/// Disjunctive normal form of `e` (negated when `neg`), simplified at every step.
pub(super) fn dnf(e: &Expr<(Criterion, bool)>, neg: bool) -> Result<Vec<Term>, AclError> {
    match e {
        Expr::Operand((c, positive)) => Ok(vec![vec![(c.clone(), *positive != neg)]]),
        Expr::Not(inner) => dnf(inner, !neg),
        Expr::Or(items) | Expr::And(items) => {
            let disjunction = matches!(e, Expr::Or(_)) != neg;
            if disjunction {
                let mut out = Vec::new();
                for item in items {
                    out.extend(dnf(item, neg)?);
                }
                normalise(out)
            } else {
                let mut out: Vec<Term> = vec![Vec::new()];
                for item in items {
                    let rhs = dnf(item, neg)?;
                    let mut next = Vec::with_capacity(out.len() * rhs.len());
                    for a in &out {
                        for b in &rhs {
                            next.push(a.iter().chain(b).cloned().collect());
                        }
                    }
                    out = normalise(next)?;
                }
                Ok(out)
            }
        }
    }
}

pub(super) fn normalise(terms: Vec<Term>) -> Result<Vec<Term>, AclError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for term in terms {
        let set: BTreeSet<(Criterion, bool)> = term.into_iter().collect();
        if set.iter().any(|(c, p)| set.contains(&(c.clone(), !p))) {
            continue; // a and !a: never true
        }
        if seen.insert(set.clone()) {
            out.push(set.into_iter().collect());
        }
    }
    if out.len() > MAX_TERMS {
        return Err(AclError::TooComplex);
    }
    Ok(out)
}
