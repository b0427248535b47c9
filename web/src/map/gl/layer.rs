//! The cached layers: a framebuffer texture holding the settled edges (or the nodes over a copy
//! of the edges), copied onto the canvas in one triangle; and the rebuild of a layer after a
//! live update's change of look, a chunk per frame behind the layer on screen (`LayerCache`).

use super::super::camera::Camera;
use super::super::shaders;
use super::pass::{self, Frame, Kind, Pass};
use web_sys::{
    WebGl2RenderingContext as GL, WebGlFramebuffer, WebGlProgram, WebGlTexture,
    WebGlUniformLocation, WebGlVertexArrayObject,
};

/// What a layer was drawn for: camera, edge or node version, canvas size, dpr bits.
pub(super) type LayerKey = (Camera, u64, i32, i32, u32);

/// A cached layer: the one on screen (`front`) and, while a live update's new look is drawn a
/// chunk per frame, the one being drawn (`back`), swapped in when complete. Only a change of
/// look (colours, widths, rings) is drawn that way, and only when the front was on screen in
/// the last frame: then the front still shows every edge and node where it is, just as it
/// looked a few frames ago. A new camera, canvas, selection or position is drawn at once.
#[derive(Default)]
pub(super) struct LayerCache {
    pub(super) front: Option<Layer>,
    back: Option<Layer>,
    /// Instances drawn into `back` so far (for `back.key`).
    drawn: i32,
    /// When the back layer's first chunk was drawn (`perf::now`).
    started: f64,
    /// Whether the front was copied in the last frame drawn.
    pub(super) shown: bool,
    /// The version whose content change may be drawn in chunks (a live update's, positions
    /// unchanged); any other version is drawn at once.
    pub(super) chunked: Option<u64>,
    /// Whether the back layer's first chunks were drawn for an older version.
    stale: bool,
    /// Whether the front, though drawn for the current key, is partly an older look (it was
    /// swapped in from a stale back layer): rebuilt once more.
    redo: bool,
}

impl LayerCache {
    /// Makes this layer current for `key`; false when there is no layer (creation failed: that
    /// pass is drawn directly). A change of look from a live update (`chunkable`: same view,
    /// every part that changed since the front was drawn changed by a live update's look), with
    /// the front on screen last frame, is drawn into the back layer `chunk` instances per frame
    /// while the front stays on screen — one chunk per frame over both layers (`budget`) — and
    /// swapped in when complete; anything else is drawn at once. `under`: the layer copied
    /// under this one (the edges under the nodes).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn current(
        &mut self,
        gl: &GL,
        pass: &Pass,
        kind: Kind,
        chunk: i32,
        under: Option<&Layer>,
        key: LayerKey,
        frame: Frame,
        chunkable: bool,
        budget: &mut bool,
    ) -> bool {
        if self.front.is_none() {
            self.front = Layer::new(gl).ok();
        }
        let Some(front) = &self.front else {
            return false;
        };
        if front.key == Some(key) && !self.redo {
            return true;
        }
        let unmoved = front.key.is_some_and(|k| same_view(k, key));
        if unmoved && self.shown && chunkable && pass.count > chunk {
            if !*budget {
                // Another layer drew its chunk this frame: the front stays a frame longer.
                return true;
            }
            if self.back.is_none() {
                self.back = Layer::new(gl).ok();
            }
            if let Some(back) = &mut self.back
                && back.resize(gl, key.2, key.3)
            {
                *budget = false;
                let started = super::super::perf::now();
                let half_drawn = self.drawn > 0 && back.key.is_some_and(|k| same_view(k, key));
                if back.key == Some(key) || half_drawn {
                    // Go on; a newer look than the half-drawn one's goes on where it is (its
                    // first chunks show the older look until the next rebuild, queued at the
                    // swap), so updates faster than a rebuild still reach the screen.
                    self.stale |= back.key != Some(key);
                    back.key = Some(key);
                    gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&back.fbo));
                    gl.viewport(0, 0, key.2, key.3);
                } else {
                    begin(gl, back, under, key);
                    self.drawn = 0;
                    self.started = started;
                    self.stale = false;
                    self.redo = false;
                }
                let n = chunk.min(pass.count - self.drawn).max(0);
                pass.draw(gl, kind, frame, Some((self.drawn, n)), i32::MAX);
                self.drawn += n;
                gl.bind_framebuffer(GL::FRAMEBUFFER, None);
                super::super::perf::measure("orrery:layer-chunk", started);
                if self.drawn >= pass.count {
                    std::mem::swap(&mut self.front, &mut self.back);
                    super::super::perf::measure("orrery:layer-swap", self.started);
                    self.drawn = 0;
                    // Partly an older look: drawn again, in chunks, from the next frame.
                    self.redo = self.stale;
                    if let Some(b) = &mut self.back {
                        b.key = None;
                    }
                }
                return true;
            }
            self.back = None;
        }
        // At once, into the front.
        let started = super::super::perf::now();
        let Some(front) = &mut self.front else {
            return false;
        };
        if !front.resize(gl, key.2, key.3) {
            self.front = None;
            return false;
        }
        begin(gl, front, under, key);
        self.redo = false;
        pass.draw(gl, kind, frame, None, i32::MAX);
        gl.bind_framebuffer(GL::FRAMEBUFFER, None);
        // A half-drawn back layer is for an older look: drop its progress.
        if let Some(back) = &mut self.back {
            back.key = None;
        }
        super::super::perf::measure("orrery:layer", started);
        true
    }
}

/// The same camera, canvas and dpr (the version may differ).
fn same_view(a: LayerKey, b: LayerKey) -> bool {
    (a.0, a.2, a.3, a.4) == (b.0, b.2, b.3, b.4)
}

/// Clears `layer` for `key` to the map's background, copies `under` (the edge layer under the
/// nodes) into it, and leaves its framebuffer bound.
fn begin(gl: &GL, layer: &mut Layer, under: Option<&Layer>, key: LayerKey) {
    gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&layer.fbo));
    gl.viewport(0, 0, key.2, key.3);
    gl.clear_color(0.043, 0.059, 0.09, 1.0);
    gl.clear(GL::COLOR_BUFFER_BIT);
    if let Some(u) = under {
        u.copy(gl);
    }
    layer.key = Some(key);
}

/// A framebuffer texture the size of the canvas holding the settled edges or nodes, and the
/// program that copies it onto the canvas (see `Gl::draw`).
pub(super) struct Layer {
    fbo: WebGlFramebuffer,
    tex: Option<WebGlTexture>,
    size: (i32, i32),
    pub(super) key: Option<LayerKey>,
    prog: WebGlProgram,
    u_tex: Option<WebGlUniformLocation>,
    vao: WebGlVertexArrayObject,
}

impl Layer {
    fn new(gl: &GL) -> Result<Self, String> {
        let prog = pass::program(gl, shaders::COPY_VS, shaders::COPY_FS)?;
        let vao = gl.create_vertex_array().ok_or("vao")?;
        gl.bind_vertex_array(Some(&vao));
        let tri = gl.create_buffer().ok_or("buffer")?;
        gl.bind_buffer(GL::ARRAY_BUFFER, Some(&tri));
        // SAFETY: the view is dropped before any allocation can move the array.
        unsafe {
            let view = js_sys::Float32Array::view(&[-1.0, -1.0, 3.0, -1.0, -1.0, 3.0]);
            gl.buffer_data_with_array_buffer_view(GL::ARRAY_BUFFER, &view, GL::STATIC_DRAW);
        }
        gl.enable_vertex_attrib_array(0);
        gl.vertex_attrib_pointer_with_i32(0, 2, GL::FLOAT, false, 0, 0);
        gl.bind_vertex_array(None);
        Ok(Layer {
            fbo: gl.create_framebuffer().ok_or("framebuffer")?,
            tex: None,
            size: (0, 0),
            key: None,
            u_tex: gl.get_uniform_location(&prog, "u_tex"),
            prog,
            vao,
        })
    }

    /// A texture of the canvas's size behind the framebuffer; false when it cannot be made.
    /// (Its completeness check is a synchronous GL query: only here, when the canvas size
    /// changed, never in a steady frame.)
    fn resize(&mut self, gl: &GL, w: i32, h: i32) -> bool {
        if self.tex.is_some() && self.size == (w, h) {
            return true;
        }
        if let Some(old) = self.tex.take() {
            gl.delete_texture(Some(&old));
        }
        let Some(tex) = gl.create_texture() else {
            return false;
        };
        gl.bind_texture(GL::TEXTURE_2D, Some(&tex));
        gl.tex_storage_2d(GL::TEXTURE_2D, 1, GL::RGBA8, w, h);
        for p in [GL::TEXTURE_MIN_FILTER, GL::TEXTURE_MAG_FILTER] {
            gl.tex_parameteri(GL::TEXTURE_2D, p, GL::NEAREST as i32);
        }
        for p in [GL::TEXTURE_WRAP_S, GL::TEXTURE_WRAP_T] {
            gl.tex_parameteri(GL::TEXTURE_2D, p, GL::CLAMP_TO_EDGE as i32);
        }
        gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&self.fbo));
        gl.framebuffer_texture_2d(
            GL::FRAMEBUFFER,
            GL::COLOR_ATTACHMENT0,
            GL::TEXTURE_2D,
            Some(&tex),
            0,
        );
        let complete = gl.check_framebuffer_status(GL::FRAMEBUFFER) == GL::FRAMEBUFFER_COMPLETE;
        gl.bind_framebuffer(GL::FRAMEBUFFER, None);
        self.tex = Some(tex);
        self.size = (w, h);
        self.key = None;
        complete
    }

    /// Copies the layer onto the bound framebuffer (exact texels: no blending, no filtering).
    pub(super) fn copy(&self, gl: &GL) {
        gl.disable(GL::BLEND);
        gl.use_program(Some(&self.prog));
        gl.active_texture(GL::TEXTURE0);
        gl.bind_texture(GL::TEXTURE_2D, self.tex.as_ref());
        gl.uniform1i(self.u_tex.as_ref(), 0);
        gl.bind_vertex_array(Some(&self.vao));
        gl.draw_arrays(GL::TRIANGLES, 0, 3);
        gl.enable(GL::BLEND);
    }
}
