//! The cached layers: a framebuffer texture holding the settled edges (or the nodes over a copy
//! of the edges), copied onto the canvas in one triangle; and the rebuild of a layer after a
//! live update's change of look, a chunk per frame behind the layer on screen (`LayerCache`;
//! when, and how, is decided in `map/rebuild.rs`).

use super::super::rebuild::{Epoch, LayerKey, Rebuild, Step};
use super::super::shaders;
use super::pass::{self, Frame, Kind, Pass};
use web_sys::{
    WebGl2RenderingContext as GL, WebGlFramebuffer, WebGlProgram, WebGlTexture,
    WebGlUniformLocation, WebGlVertexArrayObject,
};

/// A cached layer: the one on screen (`front`) and, while a live update's new look is drawn a
/// chunk per frame, the one being drawn (`back`), swapped in when complete. Only a change of
/// look (colours, widths, rings) is drawn that way, and only when the front was on screen in
/// the last frame: then the front still shows every edge and node where it is, just as it
/// looked a few frames ago. A new camera, canvas, selection or position is drawn at once.
#[derive(Default)]
pub(super) struct LayerCache {
    pub(super) front: Option<Layer>,
    back: Option<Layer>,
    /// What each of them holds, and the rule (see `Rebuild`).
    pub(super) state: Rebuild,
    /// When the back layer's first chunk was drawn (`perf::now`).
    started: f64,
}

impl LayerCache {
    /// Makes this layer current for `key` at `epoch` (see `Rebuild::step`); false when there is
    /// no layer (creation failed: that pass is drawn directly). At most one chunk per frame
    /// over both layers (`budget`). `under`: the layer copied under this one (the edges under
    /// the nodes).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn current(
        &mut self,
        gl: &GL,
        pass: &Pass,
        kind: Kind,
        chunk: i32,
        under: Option<&Layer>,
        key: LayerKey,
        epoch: Epoch,
        frame: Frame,
        budget: &mut bool,
    ) -> bool {
        if self.front.is_none() {
            self.front = Layer::new(gl).ok();
        }
        let Some(front) = &mut self.front else {
            return false;
        };
        // A new canvas size (or a new layer) recreates the texture: whatever it held is gone.
        let fresh = front.size != (key.2, key.3);
        if !front.resize(gl, key.2, key.3) {
            self.front = None;
            self.state.lost();
            return false;
        }
        if fresh {
            self.state.lost();
        }
        let back = &mut self.back;
        let back_ok = || {
            if back.is_none() {
                *back = Layer::new(gl).ok();
            }
            let ok = back.as_mut().is_some_and(|b| b.resize(gl, key.2, key.3));
            if !ok {
                *back = None;
            }
            ok
        };
        match self
            .state
            .step(key, epoch, pass.count, chunk, budget, back_ok)
        {
            Step::Keep => {}
            Step::Chunk {
                begin: fresh_back,
                from,
                n,
                swap,
            } => {
                let Some(back) = &mut self.back else {
                    return true;
                };
                let started = super::super::perf::now();
                if fresh_back {
                    start(gl, back, under, key);
                    self.started = started;
                } else {
                    gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&back.fbo));
                    gl.viewport(0, 0, key.2, key.3);
                }
                pass.draw(gl, kind, frame, Some((from, n)), i32::MAX);
                gl.bind_framebuffer(GL::FRAMEBUFFER, None);
                super::super::perf::measure("orrery:layer-chunk", started);
                if swap {
                    std::mem::swap(&mut self.front, &mut self.back);
                    super::super::perf::measure("orrery:layer-swap", self.started);
                }
            }
            Step::AtOnce => {
                let Some(front) = &mut self.front else {
                    return false;
                };
                let started = super::super::perf::now();
                start(gl, front, under, key);
                pass.draw(gl, kind, frame, None, i32::MAX);
                gl.bind_framebuffer(GL::FRAMEBUFFER, None);
                super::super::perf::measure("orrery:layer", started);
            }
        }
        true
    }
}

/// Clears `layer` for `key` to the map's background, copies `under` (the edge layer under the
/// nodes) into it, and leaves its framebuffer bound.
fn start(gl: &GL, layer: &Layer, under: Option<&Layer>, key: LayerKey) {
    gl.bind_framebuffer(GL::FRAMEBUFFER, Some(&layer.fbo));
    gl.viewport(0, 0, key.2, key.3);
    gl.clear_color(0.043, 0.059, 0.09, 1.0);
    gl.clear(GL::COLOR_BUFFER_BIT);
    if let Some(u) = under {
        u.copy(gl);
    }
}

/// A framebuffer texture the size of the canvas holding the settled edges or nodes, and the
/// program that copies it onto the canvas (see `Gl::draw`).
pub(super) struct Layer {
    fbo: WebGlFramebuffer,
    tex: Option<WebGlTexture>,
    size: (i32, i32),
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
