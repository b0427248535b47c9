//! Two traces compared (`?view=compare&trace=A&compare=B`): their span trees merged by path
//! (`trace_diff.rs`), each node with both sides' span counts and average durations, marked
//! added (only in B), removed (only in A), slower, faster or a different call count.

use crate::encoding::fmt_us;
use crate::net::enc;
use crate::route::UrlState;
use crate::trace_diff::{self, Change, DiffRow};
use crate::trace_info::service_colour;
use crate::waterfall::TraceModel;
use leptos::prelude::*;
use leptos::task::spawn_local;

#[derive(Clone, PartialEq)]
struct Side {
    id: String,
    spans: usize,
    duration_us: i64,
}

type Loaded = Result<(Side, Side, Vec<DiffRow>), String>;

async fn load(id: &str) -> Result<(Side, TraceModel), String> {
    let body = crate::net::get_bytes(&format!("orrery/api/traces/{}", enc(id))).await?;
    let m = TraceModel::from_json(body).map_err(|e| format!("trace {id}: {e}"))?;
    let side = Side {
        id: id.to_string(),
        spans: m.spans.len(),
        duration_us: if m.spans.is_empty() {
            0
        } else {
            m.end_us - m.start_us
        },
    };
    Ok((side, m))
}

#[component]
pub fn CompareView(state: RwSignal<UrlState>) -> impl IntoView {
    let (a, b) = state.with_untracked(|s| (s.trace.clone(), s.compare.clone()));
    let result = RwSignal::new(None::<Loaded>);
    spawn_local(async move {
        let r = async {
            let (sa, ma) = load(&a).await?;
            let (sb, mb) = load(&b).await?;
            Ok((sa, sb, trace_diff::diff(&ma, &mb)))
        }
        .await;
        let _ = result.try_set(Some(r));
    });
    let open = move |id: String| {
        state.update(|s| {
            s.view = "trace".into();
            s.trace = id;
        })
    };
    view! {
        <div class="traces compare" data-testid="compare">
            {move || match result.get() {
                None => view! { <p class="muted">"loading both traces…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                Some(Ok((sa, sb, rows))) => {
                    let count = |c: Change| rows.iter().filter(|r| r.change == c).count();
                    let summary = format!("{} added · {} removed · {} slower · {} faster · {} different call counts",
                        count(Change::Added), count(Change::Removed), count(Change::Slower), count(Change::Faster), count(Change::Count));
                    let (ida, idb) = (sa.id.clone(), sb.id.clone());
                    view! {
                        <h2 class="cmp-title">"Comparing two traces"</h2>
                        <p><span class="cmp-a">"A "</span><a href="#" data-testid="compare-a" on:click=move |ev| { ev.prevent_default(); open(ida.clone()) }>{sa.id.clone()}</a>
                            {format!(" · {} spans · {}", sa.spans, fmt_us(sa.duration_us))}</p>
                        <p><span class="cmp-b">"B "</span><a href="#" data-testid="compare-b" on:click=move |ev| { ev.prevent_default(); open(idb.clone()) }>{sb.id.clone()}</a>
                            {format!(" · {} spans · {}", sb.spans, fmt_us(sb.duration_us))}</p>
                        <p class="muted" data-testid="compare-summary">{summary}</p>
                        <table class="data cmp" data-testid="compare-table">
                            <thead><tr><th>"span (service operation)"</th><th class="num">"A spans"</th><th class="num">"B spans"</th>
                                <th class="num">"A avg"</th><th class="num">"B avg"</th><th class="num">"Δ avg"</th><th>"change"</th></tr></thead>
                            <tbody>{rows.into_iter().map(|r| {
                                let delta = if r.count_a > 0 && r.count_b > 0 {
                                    let d = r.avg_b_us() - r.avg_a_us();
                                    format!("{}{}", if d >= 0 { "+" } else { "−" }, fmt_us(d.abs()))
                                } else { String::new() };
                                view! {
                                    <tr class=r.change.as_str() data-change=r.change.as_str() data-service=r.service.clone() data-operation=r.operation.clone()
                                        data-count-a=r.count_a data-count-b=r.count_b>
                                        <td><span class="cmp-indent" style:padding-left=format!("{}px", r.depth.min(40) * 14)></span>
                                            <span class="swatch" style:background-color=service_colour(&r.service)></span>
                                            <strong>{r.service.clone()}</strong>" "{r.operation.clone()}</td>
                                        <td class="num">{r.count_a}</td><td class="num">{r.count_b}</td>
                                        <td class="num">{if r.count_a > 0 { fmt_us(r.avg_a_us()) } else { String::new() }}</td>
                                        <td class="num">{if r.count_b > 0 { fmt_us(r.avg_b_us()) } else { String::new() }}</td>
                                        <td class="num">{delta}</td><td>{r.change.as_str()}</td>
                                    </tr>
                                }
                            }).collect_view()}</tbody>
                        </table>
                    }.into_any()
                }
            }}
        </div>
    }
}
