//! GLSL ES 3.00 shaders. Particle motion, node/edge layout animation and the error arc on node
//! rings are all computed on the GPU from per-instance data and a time uniform, so a frame costs
//! the CPU a few uniform writes and three instanced draw calls whatever the particle count.

/// Shared vertex-shader preamble: world → clip transform and the layout-animation easing.
const HEAD: &str = r#"#version 300 es
precision highp float;
uniform vec4 u_view;   // centre x, centre y, zoom, device pixel ratio
uniform vec2 u_res;    // canvas size in device pixels
uniform float u_time;  // seconds
uniform vec2 u_anim;   // layout animation start, duration (seconds)
vec4 clip(vec2 world, vec2 offset_px) {
  vec2 s = (world - u_view.xy) * u_view.z * u_view.w + offset_px * u_view.w;
  return vec4(s / (u_res * 0.5) * vec2(1.0, -1.0), 0.0, 1.0);
}
// The edge curve (quadratic Bézier, control point = midpoint + normal × bend × length), the
// same formula as map::route::curve_point.
vec2 bezier(vec2 a, vec2 b, float bend, float t) {
  vec2 d = b - a;
  vec2 c = (a + b) * 0.5 + vec2(-d.y, d.x) * bend;
  float u = 1.0 - t;
  return u * u * a + 2.0 * u * t * c + t * t * b;
}
vec2 bezier_normal(vec2 a, vec2 b, float bend, float t) {
  vec2 d = b - a;
  vec2 c = (a + b) * 0.5 + vec2(-d.y, d.x) * bend;
  vec2 g = 2.0 * (1.0 - t) * (c - a) + 2.0 * t * (b - c);
  float l = length(g);
  return l < 1e-4 ? vec2(0.0, 1.0) : vec2(-g.y, g.x) / l;
}
float ease() {
  float k = clamp((u_time - u_anim.x) / max(u_anim.y, 1e-3), 0.0, 1.0);
  return k * k * (3.0 - 2.0 * k);
}
"#;

pub fn particle_vs() -> String {
    format!(
        "{HEAD}{}",
        r#"
layout(location=0) in vec2 a_corner;
layout(location=1) in vec4 a_from;   // source.xy, target.xy before the layout change
layout(location=2) in vec4 a_to;     // source.xy, target.xy after
layout(location=3) in vec4 a_p;      // phase, speed (edge lengths per second), error, lane
layout(location=4) in vec3 a_geom;   // the edge's curve, its source's and target's radius
uniform float u_size;
uniform float u_motion;              // 0 in reduced-motion mode: particles stand still
out vec3 v_color;
out vec2 v_uv;
void main() {
  vec4 e = mix(a_from, a_to, ease());
  float t = fract(a_p.x + u_time * a_p.y * u_motion);
  vec2 w = bezier(e.xy, e.zw, a_geom.x, t) + bezier_normal(e.xy, e.zw, a_geom.x, t) * a_p.w;
  // Hidden over its own end nodes (drawn at least 3 px wide, as in node_vs): the cached layer
  // has the nodes under the particles, so this keeps them looking drawn over.
  float m = 3.0 / u_view.z;
  bool under = distance(w, e.xy) < max(a_geom.y, m) || distance(w, e.zw) < max(a_geom.z, m);
  gl_Position = under ? vec4(2.0, 2.0, 2.0, 1.0) : clip(w, a_corner * u_size);
  v_color = a_p.z > 0.5 ? vec3(1.0, 0.25, 0.22) : vec3(0.72, 0.88, 1.0);
  v_uv = a_corner;
}
"#
    )
}

pub const PARTICLE_FS: &str = r#"#version 300 es
precision mediump float;
in vec3 v_color;
in vec2 v_uv;
out vec4 o;
void main() {
  float r = length(v_uv);
  if (r > 1.0) discard;
  o = vec4(v_color, 1.0 - smoothstep(0.4, 1.0, r));
}
"#;

/// Segments of an edge's triangle strip (enough for the curves to look smooth).
pub const EDGE_SEGMENTS: usize = 24;

pub fn edge_vs() -> String {
    format!(
        "{HEAD}{}",
        r#"
layout(location=0) in vec2 a_corner;  // x: 0..1 along (EDGE_SEGMENTS steps), y: -1..1 across
layout(location=1) in vec4 a_from;
layout(location=2) in vec4 a_to;
layout(location=3) in vec4 a_style;   // rgb, alpha (negative: dashed)
layout(location=4) in vec4 a_geom;    // width (CSS px), bend, unused, unused
out vec4 v_color;
out float v_dash;                     // world units along the edge when dashed, else -1
void main() {
  vec4 e = mix(a_from, a_to, ease());
  float t = a_corner.x;
  vec2 w = bezier(e.xy, e.zw, a_geom.y, t);
  vec2 n = bezier_normal(e.xy, e.zw, a_geom.y, t);
  gl_Position = clip(w, n * a_corner.y * 0.5 * a_geom.x);
  v_color = vec4(a_style.rgb, abs(a_style.a));
  v_dash = a_style.a < 0.0 ? t * length(e.zw - e.xy) : -1.0;
}
"#
    )
}

pub const EDGE_FS: &str = r#"#version 300 es
precision mediump float;
in vec4 v_color;
in float v_dash;
out vec4 o;
void main() {
  if (v_dash >= 0.0 && fract(v_dash / 16.0) > 0.55) discard;
  o = v_color;
}
"#;

pub fn node_vs() -> String {
    format!(
        "{HEAD}{}",
        r#"
layout(location=0) in vec2 a_corner;
layout(location=1) in vec4 a_pos;     // from.xy, to.xy
layout(location=2) in vec4 a_style;   // radius, error share, health (0,1,2), flags
layout(location=3) in float a_born;   // time the node appeared (scale-in), or -1
uniform float u_min_px;
out vec2 v_uv;
flat out vec4 v_style;
void main() {
  vec2 w = mix(a_pos.xy, a_pos.zw, ease());
  float grow = a_born < 0.0 ? 1.0 : clamp((u_time - a_born) / max(u_anim.y, 1e-3), 0.0, 1.0);
  float r_px = max(a_style.x * u_view.z, u_min_px) * grow;
  gl_Position = clip(w, a_corner * r_px);
  v_uv = a_corner;
  v_style = a_style;
}
"#
    )
}

pub const NODE_FS: &str = r#"#version 300 es
precision mediump float;
in vec2 v_uv;
flat in vec4 v_style;
out vec4 o;
void main() {
  float r = length(v_uv);
  if (r > 1.0) discard;
  vec3 health = v_style.z > 1.5 ? vec3(0.93, 0.27, 0.25)
              : v_style.z > 0.5 ? vec3(0.98, 0.67, 0.18) : vec3(0.36, 0.72, 0.86);
  int flags = int(v_style.w + 0.5);
  bool selected = (flags & 2) != 0;
  bool virt = (flags & 1) != 0;
  bool dim = (flags & 4) != 0;
  vec3 fill = virt ? vec3(0.10, 0.12, 0.16) : vec3(0.07, 0.11, 0.17);
  vec3 c = fill;
  if (r > 0.78) {
    // Ring: clockwise from 12 o'clock, the error share in red, the rest in the health colour.
    float a = fract(atan(v_uv.x, -v_uv.y) / 6.2831853 + 1.0);
    c = a < v_style.y ? vec3(1.0, 0.25, 0.22) : mix(vec3(0.36, 0.72, 0.86), health, 0.35);
  }
  if (selected && r > 0.9) c = vec3(1.0);
  float alpha = (1.0 - smoothstep(0.95, 1.0, r)) * (dim ? 0.3 : 1.0);
  o = vec4(c, alpha);
}
"#;

/// Copies the cached edge layer onto the canvas (a full-screen triangle).
pub const COPY_VS: &str = r#"#version 300 es
layout(location=0) in vec2 a_pos;
out vec2 v_uv;
void main() {
  v_uv = a_pos * 0.5 + 0.5;
  gl_Position = vec4(a_pos, 0.0, 1.0);
}
"#;

pub const COPY_FS: &str = r#"#version 300 es
precision mediump float;
uniform sampler2D u_tex;
in vec2 v_uv;
out vec4 o;
void main() {
  o = texture(u_tex, v_uv);
}
"#;
