//! Myers' line diff over numbered lines: the divide-and-conquer algorithm of
//! `similar::algorithms::myers`, step for step, with similar's own compaction and capture.
//!
//! [`super::diff`] numbers the lines of a changed range (equal lines, equal numbers) and
//! diffs the numbers. similar's implementation is generic over any indexable sequence; this
//! one walks two slices of numbers, so the inner loops compare integers at plain slice
//! indices. It takes the same steps in the same order and reports the same sections to the
//! same hooks, so the operations are the ones `similar::capture_diff_slices` returns (a
//! property test compares them on random inputs where lines repeat). It must not change what
//! a diff says: a review diff that moved from one release to the next would be noise.
//!
//! The algorithm is Eugene W. Myers' ("An O(ND) Difference Algorithm and Its Variations",
//! 1986) in the linear-space form similar implements (Apache-2.0, after Brandon Williams'
//! implementation); the steps and their order follow similar's `myers.rs`.

use std::ops::Range;

use similar::algorithms::{Capture, Compact, DiffHook, Replace};
use similar::DiffOp;

/// The operations that turn `old` into `new`, as
/// `similar::capture_diff_slices(Algorithm::Myers, old, new)` gives them.
pub(crate) fn diff(old: &[u32], new: &[u32]) -> Vec<DiffOp> {
    let mut hook = Compact::new(Replace::new(Capture::new()), old, new);
    let max = max_d(old.len(), new.len());
    let mut v = Frontiers {
        forward: vec![0; 2 * max],
        backward: vec![0; 2 * max],
        offset: max as isize,
    };
    conquer(&mut hook, old, 0..old.len(), new, 0..new.len(), &mut v);
    let Ok(()) = hook.finish();
    hook.into_inner().into_inner().into_ops()
}

/// How far the furthest-reaching paths got on each diagonal, forward and backward: the
/// diagonal `k` at index `k + offset`.
struct Frontiers {
    forward: Vec<usize>,
    backward: Vec<usize>,
    offset: isize,
}

fn max_d(old: usize, new: usize) -> usize {
    (old + new).div_ceil(2) + 1
}

fn common_prefix(old: &[u32], new: &[u32]) -> usize {
    old.iter().zip(new).take_while(|(a, b)| a == b).count()
}

fn common_suffix(old: &[u32], new: &[u32]) -> usize {
    old.iter()
        .rev()
        .zip(new.iter().rev())
        .take_while(|(a, b)| a == b)
        .count()
}

/// Reports the operations for `old[o]` → `new[n]` to `hook`, in order.
fn conquer<D: DiffHook<Error = std::convert::Infallible>>(
    hook: &mut D,
    old: &[u32],
    mut o: Range<usize>,
    new: &[u32],
    mut n: Range<usize>,
    v: &mut Frontiers,
) {
    let prefix = common_prefix(&old[o.clone()], &new[n.clone()]);
    if prefix > 0 {
        let Ok(()) = hook.equal(o.start, n.start, prefix);
    }
    o.start += prefix;
    n.start += prefix;
    let suffix = common_suffix(&old[o.clone()], &new[n.clone()]);
    let suffix_at = (o.end - suffix, n.end - suffix);
    o.end -= suffix;
    n.end -= suffix;
    if o.is_empty() && n.is_empty() {
        // Nothing between the prefix and the suffix.
    } else if n.is_empty() {
        let Ok(()) = hook.delete(o.start, o.len(), n.start);
    } else if o.is_empty() {
        let Ok(()) = hook.insert(o.start, n.start, n.len());
    } else if let Some((x, y)) = middle_snake(old, o.clone(), new, n.clone(), v) {
        conquer(hook, old, o.start..x, new, n.start..y, v);
        conquer(hook, old, x..o.end, new, y..n.end, v);
    } else {
        // As similar does when its search gives up (it never does without a deadline).
        let Ok(()) = hook.delete(o.start, o.len(), n.start);
        let Ok(()) = hook.insert(o.start, n.start, n.len());
    }
    if suffix > 0 {
        let Ok(()) = hook.equal(suffix_at.0, suffix_at.1, suffix);
    }
}

/// Where the middle snake of an optimal path from the start of `old[o]`, `new[n]` to their
/// ends starts: the forward and backward searches run in turn until their paths overlap.
/// `None` only past `max_d` rounds, which two sequences never need.
fn middle_snake(
    old: &[u32],
    o: Range<usize>,
    new: &[u32],
    n: Range<usize>,
    v: &mut Frontiers,
) -> Option<(usize, usize)> {
    let (old, new) = (&old[o.clone()], &new[n.clone()]);
    let (len_o, len_n) = (old.len(), new.len());
    let delta = len_o as isize - len_n as isize;
    let odd = delta & 1 == 1;
    let Frontiers {
        forward,
        backward,
        offset,
    } = v;
    let offset = *offset;
    forward[(1 + offset) as usize] = 0;
    backward[(1 + offset) as usize] = 0;
    let d_max = max_d(len_o, len_n) as isize;
    for d in 0..d_max {
        // Forward: diagonals d, d - 2, …, -d.
        let mut k = d;
        while k >= -d {
            let i = (k + offset) as usize;
            let mut x = furthest(forward, i, k, d);
            let mut y = (x as isize - k) as usize;
            let start = (x, y);
            while x < len_o && y < len_n && old[x] == new[y] {
                x += 1;
                y += 1;
            }
            forward[i] = x;
            if odd
                && (k - delta).abs() < d
                && x + backward[(offset - (k - delta)) as usize] >= len_o
            {
                return Some((start.0 + o.start, start.1 + n.start));
            }
            k -= 2;
        }
        // Backward: the same, from the ends.
        let mut k = d;
        while k >= -d {
            let i = (k + offset) as usize;
            let mut x = furthest(backward, i, k, d);
            let mut y = (x as isize - k) as usize;
            while x < len_o && y < len_n && old[len_o - 1 - x] == new[len_n - 1 - y] {
                x += 1;
                y += 1;
            }
            backward[i] = x;
            if !odd
                && (k - delta).abs() <= d
                && x + forward[(offset - (k - delta)) as usize] >= len_o
            {
                return Some((len_o - x + o.start, len_n - y + n.start));
            }
            k -= 2;
        }
    }
    None
}

/// Where a path of `d` edits on diagonal `k` (at index `i` of `v`) starts its snake: one
/// step on from the further of its neighbours' paths of `d - 1` edits, down from `k + 1`
/// or right from `k - 1`.
#[inline]
fn furthest(v: &[usize], i: usize, k: isize, d: isize) -> usize {
    if k == -d || (k != d && v[i - 1] < v[i + 1]) {
        v[i + 1]
    } else {
        v[i - 1] + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use similar::Algorithm;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// The same operations as similar's Myers diff: few distinct lines, so that lines
        /// repeat, snakes meet in many ways and compaction has room to move.
        #[test]
        fn issue_8_the_same_operations_as_similar(
            old in proptest::collection::vec(0u32..4, 0..60),
            new in proptest::collection::vec(0u32..5, 0..60),
        ) {
            prop_assert_eq!(diff(&old, &new), similar::capture_diff_slices(Algorithm::Myers, &old, &new));
        }

        /// And on longer inputs, closer to each other, as a hardened resource is to its input.
        #[test]
        fn issue_8_the_same_operations_on_edited_inputs(
            old in proptest::collection::vec(0u32..40, 0..200),
            edits in proptest::collection::vec((0usize..200, 0usize..4, proptest::collection::vec(0u32..45, 0..12)), 0..8),
        ) {
            let mut new = old.clone();
            for (at, cut, put) in edits {
                let at = at.min(new.len());
                let end = (at + cut).min(new.len());
                new.splice(at..end, put);
            }
            prop_assert_eq!(diff(&old, &new), similar::capture_diff_slices(Algorithm::Myers, &old, &new));
        }
    }
}
