//! One instanced pass (edges, particles or nodes): its program, vertex arrays and instance
//! buffer, its uniform locations looked up once at link time (a frame asks nothing of the GL:
//! no `getUniformLocation`, `getError` or `getParameter` in the frame loop), and the draw of
//! all its instances or a range of them. Also the shader program builder the layers share.

use super::super::camera::Camera;
use super::super::scene::ANIM_SECS;
use web_sys::{
    WebGl2RenderingContext as GL, WebGlBuffer, WebGlProgram, WebGlUniformLocation,
    WebGlVertexArrayObject,
};

/// What a pass needs of the frame: camera, dpr, canvas size, time, animation start, motion.
pub(super) type Frame = (Camera, f32, f32, f32, f32, f32, bool);

/// A pass's uniforms, looked up once.
struct Uniforms {
    view: Option<WebGlUniformLocation>,
    res: Option<WebGlUniformLocation>,
    time: Option<WebGlUniformLocation>,
    anim: Option<WebGlUniformLocation>,
    size: Option<WebGlUniformLocation>,
    motion: Option<WebGlUniformLocation>,
    min_px: Option<WebGlUniformLocation>,
}

pub(super) struct Pass {
    prog: WebGlProgram,
    pub(super) vao: WebGlVertexArrayObject,
    /// The per-vertex corners (a quad, or the edge strip).
    pub(super) corners: WebGlBuffer,
    pub(super) inst: WebGlBuffer,
    pub(super) count: i32,
    /// Vertices of the strip drawn per instance.
    pub(super) verts: i32,
    /// Floats per instance attribute (locations 1..), to draw a range of instances.
    attrs: Vec<i32>,
    uniforms: Uniforms,
    /// Bytes allocated for `inst` (an upload that fits reuses it with `bufferSubData`).
    pub(super) capacity: usize,
}

/// Which uniform set a pass takes besides the common ones.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Edges,
    Particles,
    Nodes,
}

impl Pass {
    pub(super) fn new(
        gl: &GL,
        vs: &str,
        fs: &str,
        corners: &[f32],
        attrs: &[i32],
    ) -> Result<Pass, String> {
        let prog = program(gl, vs, fs)?;
        let vao = gl.create_vertex_array().ok_or("vao")?;
        gl.bind_vertex_array(Some(&vao));
        let quad = gl.create_buffer().ok_or("buffer")?;
        gl.bind_buffer(GL::ARRAY_BUFFER, Some(&quad));
        // SAFETY: the view is dropped before any allocation can move the array.
        unsafe {
            let view = js_sys::Float32Array::view(corners);
            gl.buffer_data_with_array_buffer_view(GL::ARRAY_BUFFER, &view, GL::STATIC_DRAW);
        }
        gl.enable_vertex_attrib_array(0);
        gl.vertex_attrib_pointer_with_i32(0, 2, GL::FLOAT, false, 0, 0);
        let inst = gl.create_buffer().ok_or("buffer")?;
        gl.bind_buffer(GL::ARRAY_BUFFER, Some(&inst));
        let stride: i32 = attrs.iter().sum::<i32>() * 4;
        let mut offset = 0;
        for (k, &size) in attrs.iter().enumerate() {
            let loc = k as u32 + 1;
            gl.enable_vertex_attrib_array(loc);
            gl.vertex_attrib_pointer_with_i32(loc, size, GL::FLOAT, false, stride, offset);
            gl.vertex_attrib_divisor(loc, 1);
            offset += size * 4;
        }
        gl.bind_vertex_array(None);
        let u = |name: &str| gl.get_uniform_location(&prog, name);
        let uniforms = Uniforms {
            view: u("u_view"),
            res: u("u_res"),
            time: u("u_time"),
            anim: u("u_anim"),
            size: u("u_size"),
            motion: u("u_motion"),
            min_px: u("u_min_px"),
        };
        Ok(Pass {
            prog,
            vao,
            corners: quad,
            inst,
            count: 0,
            verts: (corners.len() / 2) as i32,
            attrs: attrs.to_vec(),
            uniforms,
            capacity: 0,
        })
    }

    /// Uploads the instance data: into the buffer as it is when it fits (`bufferSubData`),
    /// else into a new allocation with room to grow by a quarter, so a live update of about
    /// the same size never re-allocates the GPU buffer.
    pub(super) fn upload(&mut self, gl: &GL, data: &[f32]) {
        gl.bind_buffer(GL::ARRAY_BUFFER, Some(&self.inst));
        let bytes = std::mem::size_of_val(data);
        if bytes > self.capacity {
            let capacity = bytes + bytes / 4;
            gl.buffer_data_with_i32(GL::ARRAY_BUFFER, capacity as i32, GL::DYNAMIC_DRAW);
            self.capacity = capacity;
        }
        // SAFETY: the view is dropped before any allocation can move `data`.
        unsafe {
            let view = js_sys::Float32Array::view(data);
            gl.buffer_sub_data_with_i32_and_array_buffer_view(GL::ARRAY_BUFFER, 0, &view);
        }
    }

    /// All instances, or `range` = (first, count) of them (the instance attributes re-pointed
    /// at the first one — WebGL2 has no base instance). Particles are capped at `particle_cap`.
    pub(super) fn draw(
        &self,
        gl: &GL,
        kind: Kind,
        frame: Frame,
        range: Option<(i32, i32)>,
        particle_cap: i32,
    ) {
        let (cam, dpr, w, h, rt, anim, motion) = frame;
        if self.count == 0 {
            return;
        }
        let u = &self.uniforms;
        gl.use_program(Some(&self.prog));
        gl.uniform4f(u.view.as_ref(), cam.cx, cam.cy, cam.zoom, dpr);
        gl.uniform2f(u.res.as_ref(), w, h);
        gl.uniform1f(u.time.as_ref(), rt);
        gl.uniform2f(
            u.anim.as_ref(),
            anim,
            if motion { ANIM_SECS as f32 } else { 0.0 },
        );
        match kind {
            Kind::Particles => {
                gl.uniform1f(u.size.as_ref(), (3.2 * cam.zoom).clamp(1.4, 3.5));
                gl.uniform1f(u.motion.as_ref(), if motion { 1.0 } else { 0.0 });
            }
            Kind::Nodes => gl.uniform1f(u.min_px.as_ref(), 3.0),
            Kind::Edges => {}
        }
        gl.bind_vertex_array(Some(&self.vao));
        // Particles are uploaded in a shuffled order, so any prefix is a fair sample.
        let count = if kind == Kind::Particles {
            self.count.min(particle_cap)
        } else {
            self.count
        };
        match range {
            Some((first, n)) if first > 0 => {
                self.point_instances(gl, first);
                gl.draw_arrays_instanced(GL::TRIANGLE_STRIP, 0, self.verts, n.min(count - first));
                self.point_instances(gl, 0);
            }
            Some((_, n)) => {
                gl.draw_arrays_instanced(GL::TRIANGLE_STRIP, 0, self.verts, n.min(count))
            }
            None => gl.draw_arrays_instanced(GL::TRIANGLE_STRIP, 0, self.verts, count),
        }
    }

    /// Points the pass's instance attributes (bound VAO) at instance `first` of its buffer.
    fn point_instances(&self, gl: &GL, first: i32) {
        gl.bind_buffer(GL::ARRAY_BUFFER, Some(&self.inst));
        let stride: i32 = self.attrs.iter().sum::<i32>() * 4;
        let mut offset = first * stride;
        for (k, &size) in self.attrs.iter().enumerate() {
            gl.vertex_attrib_pointer_with_i32(k as u32 + 1, size, GL::FLOAT, false, stride, offset);
            offset += size * 4;
        }
    }
}

/// Compiles and links a program (at start only: the status queries are synchronous).
pub(super) fn program(gl: &GL, vs: &str, fs: &str) -> Result<WebGlProgram, String> {
    let compile = |kind, src: &str| -> Result<_, String> {
        let s = gl.create_shader(kind).ok_or("shader")?;
        gl.shader_source(&s, src);
        gl.compile_shader(&s);
        if gl
            .get_shader_parameter(&s, GL::COMPILE_STATUS)
            .as_bool()
            .unwrap_or(false)
        {
            Ok(s)
        } else {
            Err(gl.get_shader_info_log(&s).unwrap_or_default())
        }
    };
    let p = gl.create_program().ok_or("program")?;
    gl.attach_shader(&p, &compile(GL::VERTEX_SHADER, vs)?);
    gl.attach_shader(&p, &compile(GL::FRAGMENT_SHADER, fs)?);
    gl.link_program(&p);
    if gl
        .get_program_parameter(&p, GL::LINK_STATUS)
        .as_bool()
        .unwrap_or(false)
    {
        Ok(p)
    } else {
        Err(gl.get_program_info_log(&p).unwrap_or_default())
    }
}
