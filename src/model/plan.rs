//! Memory plan of the CPU forward pass: which reused buffer ("slot") holds each layer's output.
//!
//! Every frame of a given input size runs the same layers on maps of the same sizes, so where each
//! activation lives can be decided once: outputs whose lifetimes do not overlap share a slot, and
//! the slots are allocated on the first frame and reused on every later one. A fresh buffer per
//! layer per frame (tens of MB for a 416² YOLOv3) cost page faults and zeroing on every frame.

use crate::model::{Cfg, LayerKind};

/// Index of the last layer that reads each layer's output (the next layer, or a later route or
/// shortcut naming it).
pub(crate) fn last_uses(cfg: &Cfg) -> Vec<usize> {
    let mut last: Vec<usize> = (1..=cfg.layers.len()).collect();
    for l in &cfg.layers {
        let from: &[usize] = match &l.kind {
            LayerKind::Route(r) => &r.layers,
            LayerKind::Shortcut(s) => &s.from,
            _ => &[],
        };
        from.iter().for_each(|&f| last[f] = last[f].max(l.index));
    }
    last
}

/// Which layers' outputs are another layer's values unchanged, so that no copy is made: a
/// one-input route without groups, and a `[yolo]` head (its conv's output).
pub(crate) fn aliases(cfg: &Cfg) -> Vec<Option<usize>> {
    cfg.layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Route(r) if r.layers.len() == 1 && r.groups <= 1 => Some(r.layers[0]),
            LayerKind::Yolo(_) => l.index.checked_sub(1),
            _ => None,
        })
        .collect()
}

/// Where a layer's output lives: the first `len` values of slot `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub slot: usize,
    pub len: usize,
}

/// Slot of every layer's output, and how long each slot must be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub locs: Vec<Loc>,
    /// Whether layer i writes its own output (false: it is another layer's, e.g. a one-input
    /// route or a `[yolo]` head reading its conv, and nothing runs).
    pub writes: Vec<bool>,
    pub slot_lens: Vec<usize>,
}

/// Plans outputs of `sizes[i]` values; `alias[i] = Some(j)` (j < i) when layer i's output is
/// layer j's values unchanged; `last_use[i]` is the last layer reading layer i's output. An
/// output stays in its slot until the last reader of it or of any alias of it has run; a free
/// slot is reused best-fit (the shortest one long enough, else the longest one, grown).
pub(crate) fn plan(sizes: &[usize], alias: &[Option<usize>], last_use: &[usize]) -> Plan {
    let n = sizes.len();
    let mut owner: Vec<usize> = (0..n).collect();
    for i in 0..n {
        if let Some(j) = alias[i].filter(|&j| j < i) {
            owner[i] = owner[j];
        }
    }
    let mut end = vec![0usize; n];
    for i in 0..n {
        end[owner[i]] = end[owner[i]].max(last_use[i]).max(i);
    }
    let mut locs = vec![Loc { slot: 0, len: 0 }; n];
    let mut slot_lens: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    // (end of the owner's life, slot)
    let mut held: Vec<(usize, usize)> = Vec::new();
    for i in 0..n {
        held.retain(|&(e, slot)| {
            let live = e >= i;
            if !live {
                free.push(slot);
            }
            live
        });
        if owner[i] != i {
            locs[i] = Loc {
                slot: locs[owner[i]].slot,
                len: sizes[i].min(locs[owner[i]].len),
            };
            continue;
        }
        let fits = free
            .iter()
            .enumerate()
            .filter(|(_, &s)| slot_lens[s] >= sizes[i])
            .min_by_key(|(_, &s)| slot_lens[s])
            .map(|(k, _)| k);
        let longest = || {
            free.iter()
                .enumerate()
                .max_by_key(|(_, &s)| slot_lens[s])
                .map(|(k, _)| k)
        };
        let slot = match fits.or_else(longest) {
            Some(k) => free.swap_remove(k),
            None => {
                slot_lens.push(0);
                slot_lens.len() - 1
            }
        };
        slot_lens[slot] = slot_lens[slot].max(sizes[i]);
        locs[i] = Loc {
            slot,
            len: sizes[i],
        };
        held.push((end[i], slot));
    }
    let writes = (0..n).map(|i| owner[i] == i).collect();
    Plan {
        locs,
        writes,
        slot_lens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No two outputs alive at the same layer share a slot unless one is an alias of the other,
    /// and every slot is long enough for what it holds.
    fn check_sound(sizes: &[usize], alias: &[Option<usize>], last_use: &[usize], p: &Plan) {
        let n = sizes.len();
        let root = |mut i: usize| {
            while let Some(j) = alias[i] {
                i = j;
            }
            i
        };
        for (i, &size) in sizes.iter().enumerate() {
            assert!(p.slot_lens[p.locs[i].slot] >= size, "slot of {i} too short");
            if !p.writes[i] {
                continue;
            }
            for j in 0..i {
                let rj = root(j);
                // j's values (or an alias's) still read when i writes its own
                let j_live = (0..n).filter(|&k| root(k) == rj).any(|k| last_use[k] >= i);
                if j_live {
                    assert_ne!(p.locs[i].slot, p.locs[j].slot, "{j} overwritten by {i}");
                }
            }
        }
    }

    #[test]
    fn a_chain_ping_pongs_between_two_slots() {
        let sizes = [100, 50, 80, 20];
        let alias = [None; 4];
        let last_use = [1, 2, 3, 4];
        let p = plan(&sizes, &alias, &last_use);
        check_sound(&sizes, &alias, &last_use, &p);
        assert_eq!(p.slot_lens.len(), 2);
        assert!(p.writes.iter().all(|&w| w));
    }

    #[test]
    fn aliases_share_their_source_and_keep_it_alive() {
        // 0 → 1 → 2, route 3 = 0 (alias, read by 4), 4 reads 3.
        let sizes = [10, 10, 10, 10, 10];
        let alias = [None, None, None, Some(0), None];
        let last_use = [1, 2, 3, 4, 5];
        let p = plan(&sizes, &alias, &last_use);
        check_sound(&sizes, &alias, &last_use, &p);
        assert_eq!(p.locs[3], p.locs[0]);
        assert!(!p.writes[3]);
        // 0 lives until 4 through its alias: 1 and 2 cannot take its slot.
        assert_ne!(p.locs[1].slot, p.locs[0].slot);
        assert_ne!(p.locs[2].slot, p.locs[0].slot);
    }

    #[test]
    fn real_cfgs_plan_soundly_in_a_fraction_of_the_activations() {
        use crate::model::layer_shapes;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for name in ["yolov3-spp3.cfg", "yolov3-tiny.cfg", "prune_0.95.cfg"] {
            let cfg = Cfg::parse_file(&root.join("models/cfg").join(name)).unwrap();
            let shapes = layer_shapes(&cfg, 416, 416).unwrap();
            let n = cfg.layers.len();
            let (last_use, alias) = (last_uses(&cfg), aliases(&cfg));
            let sizes: Vec<usize> = shapes.iter().map(|s| s.c * s.h * s.w).collect();
            let p = plan(&sizes, &alias, &last_use);
            check_sound(&sizes, &alias, &last_use, &p);
            let planned: usize = p.slot_lens.iter().sum();
            let naive: usize = sizes.iter().sum();
            println!("{name}: {planned} planned of {naive} values");
            // The deep cfgs reuse a few slots over 100+ layers; tiny's first maps dominate.
            let most = if n > 100 { naive / 4 } else { naive / 2 };
            assert!(
                planned < most,
                "{name}: {planned} planned vs {naive} values"
            );
        }
    }
}
