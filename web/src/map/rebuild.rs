//! When a cached layer is redrawn, and how: the rule of `LayerCache` without the GL, so it is
//! unit-tested natively. A layer shows what it was drawn for (its key: camera, content version,
//! canvas size, dpr) as of a *look epoch*: the count of changes to its content that were not a
//! live update's change of look (a first graph, a node that moved or appeared, a selection, a
//! switch between curved and straight edges). While the epoch is the one the front layer was
//! drawn at, and the view is the same, every difference between the front and the current
//! content is a live update's look (colours, widths, rings), so the new look is drawn into the
//! back layer a chunk per frame while the front stays on screen; anything else is drawn at once.
//!
//! The epoch is what makes a rebuild survive a second live update arriving in the middle of it.
//! The rule it replaced remembered only the latest live version of each layer, so an update that
//! came while the node layer was being rebuilt over a freshly swapped edge layer made the node
//! layer's change look like a jump of two edge versions, and it was redrawn whole in one frame —
//! on stop 30's CI machine (3.6 fps) one of six live updates did that.

use super::camera::Camera;

/// What a layer was drawn for: camera, content version, canvas size, dpr bits.
pub type LayerKey = (Camera, u64, i32, i32, u32);

/// The look epochs a layer's content depends on: the edge layer's own; the node layer's (the
/// nodes', the edges') — it is drawn over a copy of the edge layer.
pub type Epoch = (u64, u64);

/// The node layer's content version: the nodes' version and the generation of the edge layer
/// it is drawn over (low 32 bits each), so it is redrawn over every new content of that layer —
/// also a stale edge layer redrawn for the same version.
pub fn node_layer_version(nodes: u64, edge_generation: u64) -> u64 {
    (nodes << 32) | (edge_generation & 0xffff_ffff)
}

/// A layer's content: drawn for `key` at `epoch`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Drawn {
    key: LayerKey,
    epoch: Epoch,
}

/// What to draw this frame (see `Rebuild::step`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// The front layer stays on screen as it is.
    Keep,
    /// Draw instances `from .. from + n` into the back layer — first clearing it (and copying
    /// the layer under it) when `begin` — then, when `swap`, swap it in as the front.
    Chunk {
        begin: bool,
        from: i32,
        n: i32,
        swap: bool,
    },
    /// Draw every instance into the front layer now.
    AtOnce,
}

/// The state of one cached layer: what its front shows, what its back is being drawn for.
#[derive(Debug, Default)]
pub struct Rebuild {
    front: Option<Drawn>,
    back: Option<Drawn>,
    /// Instances drawn into the back so far.
    drawn: i32,
    /// Whether the back's first chunks were drawn for an older look.
    stale: bool,
    /// Whether the front, though drawn for the current key, is partly an older look (swapped in
    /// from a stale back): rebuilt once more.
    redo: bool,
    /// Whether the front was on screen in the last frame drawn.
    pub shown: bool,
    /// Bumped whenever the front's content changes (a swap, a draw at once): the node layer,
    /// drawn over a copy of the edge layer, is redrawn when the edge layer's generation moves —
    /// also when a stale edge layer is redrawn for the same key.
    pub generation: u64,
}

impl Rebuild {
    /// Decides this frame's drawing for `key` at `epoch`, `count` instances, at most `chunk` per
    /// frame, and records it as done. `budget`: whether no layer has drawn a chunk this frame
    /// yet (one chunk per frame over both layers); `back_ok` makes the back layer ready and
    /// says whether there is one (its creation can fail: then it is drawn at once).
    pub fn step(
        &mut self,
        key: LayerKey,
        epoch: Epoch,
        count: i32,
        chunk: i32,
        budget: &mut bool,
        back_ok: impl FnOnce() -> bool,
    ) -> Step {
        if self.front.is_some_and(|f| f.key == key) && !self.redo {
            return Step::Keep;
        }
        let looks_only = self
            .front
            .is_some_and(|f| f.epoch == epoch && same_view(f.key, key));
        if looks_only && self.shown && count > chunk {
            if !*budget {
                // Another layer drew its chunk this frame: the front stays a frame longer.
                return Step::Keep;
            }
            if back_ok() {
                *budget = false;
                // A newer look than the half-drawn one goes on where it is (its first chunks
                // show the older look until the rebuild queued at the swap), so updates faster
                // than a rebuild still reach the screen.
                let go_on = self.drawn > 0
                    && self
                        .back
                        .is_some_and(|b| b.epoch == epoch && same_view(b.key, key));
                if go_on {
                    self.stale |= self.back.is_some_and(|b| b.key != key);
                } else {
                    // (`redo` stays until the swap: a front redone is still partly an older
                    // look until then.)
                    self.drawn = 0;
                    self.stale = false;
                }
                self.back = Some(Drawn { key, epoch });
                let from = self.drawn;
                let n = chunk.min(count - from).max(0);
                self.drawn += n;
                let swap = self.drawn >= count;
                if swap {
                    self.front = self.back.take();
                    self.drawn = 0;
                    // Partly an older look: drawn again, in chunks, from the next frame.
                    self.redo = self.stale;
                    self.generation += 1;
                }
                return Step::Chunk {
                    begin: !go_on,
                    from,
                    n,
                    swap,
                };
            }
        }
        // At once, into the front; a half-drawn back is for an older look: dropped.
        self.front = Some(Drawn { key, epoch });
        self.back = None;
        self.drawn = 0;
        self.redo = false;
        self.generation += 1;
        Step::AtOnce
    }

    /// The front's content was lost (its texture was recreated or could not be made).
    pub fn lost(&mut self) {
        self.front = None;
        self.back = None;
        self.drawn = 0;
    }
}

/// The same camera, canvas and dpr (the version may differ).
fn same_view(a: LayerKey, b: LayerKey) -> bool {
    (a.0, a.2, a.3, a.4) == (b.0, b.2, b.3, b.4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAM: Camera = Camera {
        cx: 0.0,
        cy: 0.0,
        zoom: 1.0,
    };

    /// The edge and node layers of a map as `Gl` wires them: the edge layer first, then the
    /// node layer drawn over it, keyed by the edge layer's generation, one chunk per frame over
    /// both. Versions and epochs move as `Gl::upload` moves them.
    struct Map {
        edges: Rebuild,
        nodes: Rebuild,
        edge_version: u64,
        node_version: u64,
        edge_epoch: u64,
        node_epoch: u64,
        cam: Camera,
        steps: Vec<(Step, Step)>,
    }

    const EDGES: i32 = 1_000;
    const NODES: i32 = 401;

    impl Map {
        /// A map whose first graph is drawn and on screen.
        fn new() -> Map {
            let mut m = Map {
                edges: Rebuild::default(),
                nodes: Rebuild::default(),
                edge_version: 0,
                node_version: 0,
                edge_epoch: 0,
                node_epoch: 0,
                cam: CAM,
                steps: Vec::new(),
            };
            m.update(true, true, false);
            m.frame();
            m.steps.clear();
            m
        }

        /// A graph update changing the edges' and/or the nodes' instance data; `live`: a live
        /// update's change of look (nothing moved).
        fn update(&mut self, edges: bool, nodes: bool, live: bool) {
            if edges {
                self.edge_version += 1;
                self.edge_epoch += u64::from(!live);
            }
            if nodes {
                self.node_version += 1;
                self.node_epoch += u64::from(!live);
            }
        }

        fn frame(&mut self) {
            let mut budget = true;
            let key = (self.cam, self.edge_version, 800, 600, 1);
            let e = self
                .edges
                .step(key, (self.edge_epoch, 0), EDGES, 512, &mut budget, || true);
            let nkey = (
                self.cam,
                node_layer_version(self.node_version, self.edges.generation),
                800,
                600,
                1,
            );
            let n = self.nodes.step(
                nkey,
                (self.node_epoch, self.edge_epoch),
                NODES,
                200,
                &mut budget,
                || true,
            );
            self.edges.shown = true;
            self.nodes.shown = true;
            self.steps.push((e, n));
        }

        fn frames(&mut self, k: usize) {
            for _ in 0..k {
                self.frame();
            }
        }

        fn at_once(&self) -> usize {
            self.steps
                .iter()
                .map(|(e, n)| usize::from(*e == Step::AtOnce) + usize::from(*n == Step::AtOnce))
                .sum()
        }

        fn chunks(&self) -> usize {
            self.steps
                .iter()
                .flat_map(|(e, n)| [e, n])
                .filter(|s| matches!(s, Step::Chunk { .. }))
                .count()
        }

        /// Both layers show the current content: nothing left to draw.
        fn settled(&mut self) -> bool {
            self.frame();
            self.steps.pop() == Some((Step::Keep, Step::Keep))
        }
    }

    #[test]
    fn a_live_update_is_drawn_a_chunk_per_frame() {
        let mut m = Map::new();
        m.update(true, true, true);
        m.frames(20);
        assert_eq!(m.at_once(), 0, "{:?}", m.steps);
        // 2 edge chunks, then 3 node chunks: one chunk per frame over both layers.
        assert_eq!(m.chunks(), 2 + 3, "{:?}", m.steps);
        assert!(
            m.steps[..5].iter().all(|(e, n)| {
                matches!(e, Step::Chunk { .. }) != matches!(n, Step::Chunk { .. })
            })
        );
        assert!(m.settled());
    }

    /// What stop 30's CI machine did: a second live update came while the node layer was being
    /// rebuilt over the edge layer the first one had just swapped in.
    #[test]
    fn an_update_in_the_middle_of_a_rebuild_is_still_drawn_in_chunks() {
        for at in 0..6 {
            let mut m = Map::new();
            m.update(true, true, true);
            m.frames(at);
            m.update(true, at % 2 == 0, true);
            m.frames(30);
            assert_eq!(
                m.at_once(),
                0,
                "second update after {at} frames: {:?}",
                m.steps
            );
            assert!(m.settled(), "after {at} frames");
        }
    }

    /// A stale edge layer (its first chunks an older look) is drawn again for the same key; the
    /// node layer, which holds a copy of it, follows.
    #[test]
    fn a_stale_swap_is_redrawn_and_the_nodes_follow() {
        let mut m = Map::new();
        m.update(true, false, true);
        m.frame(); // the first edge chunk: the first look
        m.update(true, false, true);
        m.frame(); // the rest in the new look, and the swap
        let swapped = m.edges.generation;
        assert!(m.edges.redo, "a swap of a partly older look is redone");
        m.frames(30);
        assert_eq!(m.at_once(), 0, "{:?}", m.steps);
        assert!(
            m.edges.generation > swapped,
            "the edge layer is drawn again"
        );
        assert!(m.settled());
        let nodes = m.nodes.front.expect("a node layer");
        assert_eq!(
            nodes.key.1 & 0xffff_ffff,
            m.edges.generation,
            "the node layer holds the edge layer's latest content"
        );
    }

    #[test]
    fn a_change_that_is_not_a_look_is_drawn_at_once() {
        // A selection: the nodes at once, the edges untouched.
        let mut m = Map::new();
        m.update(false, true, false);
        m.frame();
        assert_eq!(m.steps, [(Step::Keep, Step::AtOnce)]);
        // Its epoch does not hold back the edges' next live look, nor the nodes' (over them).
        m.update(true, true, true);
        m.frames(10);
        assert_eq!(m.at_once(), 1, "{:?}", m.steps);
        assert!(m.settled());
        // A node that moved during a live rebuild: both at once, the half-drawn back dropped.
        let mut m = Map::new();
        m.update(true, true, true);
        m.frame();
        m.update(true, true, false);
        m.frame();
        assert_eq!(m.steps[1], (Step::AtOnce, Step::AtOnce), "{:?}", m.steps);
        assert!(m.settled());
        // A new camera.
        let mut m = Map::new();
        m.update(true, true, true);
        m.cam.zoom = 2.0;
        m.frame();
        assert_eq!(m.steps, [(Step::AtOnce, Step::AtOnce)]);
    }

    #[test]
    fn without_a_back_layer_or_off_screen_the_look_is_drawn_at_once() {
        let mut r = Rebuild::default();
        let key = |v| (CAM, v, 800, 600, 1);
        let mut budget = true;
        assert_eq!(
            r.step(key(1), (0, 0), 1_000, 512, &mut budget, || true),
            Step::AtOnce
        );
        assert_eq!(
            r.step(key(2), (0, 0), 1_000, 512, &mut budget, || true),
            Step::AtOnce,
            "not on screen last frame"
        );
        r.shown = true;
        assert_eq!(
            r.step(key(3), (0, 0), 1_000, 512, &mut budget, || false),
            Step::AtOnce,
            "no back layer"
        );
        assert!(budget, "drawing at once spends no chunk budget");
        assert_eq!(
            r.step(key(4), (0, 0), 100, 512, &mut budget, || true),
            Step::AtOnce,
            "fewer instances than a chunk"
        );
        r.lost();
        assert_eq!(
            r.step(key(4), (0, 0), 1_000, 512, &mut budget, || true),
            Step::AtOnce,
            "its content lost"
        );
    }
}
