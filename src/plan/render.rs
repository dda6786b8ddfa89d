//! The plan report as text.

use super::{GIB, PlanReport, Verdict};
use std::fmt::Write;

/// Bytes in GiB, or MiB below 1 GiB.
fn gib(bytes: i64) -> String {
    let b = bytes as f64;
    if b.abs() >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    }
}

/// The items separated by spaces, or `none` for an empty list.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(" ")
    }
}

/// The report as the lines `axle plan` prints: the mesh, per-device memory
/// against the device's limit, FLOPs and bytes accessed, collectives,
/// compile time, then `fits` or `short by X GiB`.
pub fn render_report(report: &PlanReport) -> String {
    let mut out = String::new();
    let modifiers = if report.mesh_modifiers.is_empty() {
        String::new()
    } else {
        format!(
            " (mesh rule modifiers: {})",
            report.mesh_modifiers.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "{} on {} ({} host{}), mesh {}{modifiers}",
        report.experiment,
        report.target,
        report.hosts,
        if report.hosts == 1 { "" } else { "s" },
        report.mesh
    );
    let _ = writeln!(
        out,
        "mesh rule: {}; compiler options{}: {}",
        report
            .mesh_rule
            .as_deref()
            .map_or("none (explicit mesh)".to_string(), |p| format!("`{p}`")),
        report
            .compiler_options_rule
            .as_deref()
            .map_or(String::new(), |p| format!(" of rule `{p}`")),
        list_or_none(&report.compiler_options)
    );
    let _ = writeln!(
        out,
        "batch size {}, seq len {}, modifiers: {}, overrides: {}",
        report.batch_size,
        report.seq_len,
        list_or_none(&report.modifiers),
        list_or_none(&report.overrides)
    );
    if let Some(c) = &report.compiled {
        if c.host_devices.len() > 1 {
            for (host, ids) in &c.host_devices {
                let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
                let _ = writeln!(out, "host {host}: devices {}", ids.join(","));
            }
        }
        let _ = writeln!(out, "per device ({}):", c.device_kind);
        let _ = writeln!(out, "  arguments    {:>12}", gib(c.arguments));
        let _ = writeln!(out, "  outputs      {:>12}", gib(c.outputs));
        let _ = writeln!(out, "  aliased      {:>12}", gib(c.alias));
        let _ = writeln!(out, "  temporaries  {:>12}", gib(c.temporaries));
        let limit = report
            .memory_limit
            .map_or("unknown".to_string(), |l| gib(l as i64));
        let _ = writeln!(
            out,
            "  peak         {:>12}  of {limit}",
            gib(c.planned_peak())
        );
        if c.peak < c.buffer_sum() {
            let _ = writeln!(
                out,
                "  (the plugin's peak, {}, is below arguments + outputs - aliased + temporaries; the larger is used)",
                gib(c.peak)
            );
        }
        match c.flops {
            Some(f) => {
                let _ = writeln!(out, "  FLOPs        {f:>12.4e}");
            }
            None => {
                let _ = writeln!(out, "  FLOPs        not reported by the compiler");
            }
        }
        if let Some(b) = c.bytes_accessed {
            let _ = writeln!(out, "  bytes accessed {b:>10.4e}");
        }
        let collectives = if c.collectives.is_empty() {
            "none".to_string()
        } else {
            c.collectives
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "  collectives  {collectives}");
        if c.host_memory_instructions > 0 {
            let _ = writeln!(
                out,
                "  host memory  {} instructions (offloaded values and their copies)",
                c.host_memory_instructions
            );
        }
        let _ = writeln!(out, "  compile time {:.1} s", c.compile_seconds);
    }
    if report.compiled.is_none()
        && let Some(limit) = report.memory_limit
    {
        let _ = writeln!(out, "device memory {}", gib(limit as i64));
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    match &report.verdict {
        Verdict::Fits { headroom } => {
            let _ = writeln!(out, "fits ({} to spare per device)", gib(*headroom));
        }
        Verdict::UnknownLimit => {
            let _ = writeln!(out, "no verdict: the device's memory size is unknown");
        }
        Verdict::ShortBy {
            bytes,
            compiler_message,
        } => {
            match (bytes, compiler_message) {
                (Some(b), Some(_)) => {
                    let _ = writeln!(
                        out,
                        "short by {} per device (at least: the compiler counted temporaries only)",
                        gib(*b)
                    );
                }
                (Some(b), None) => {
                    let _ = writeln!(out, "short by {} per device", gib(*b));
                }
                (None, _) => {
                    let _ = writeln!(out, "short of memory (the compiler gave no sizes)");
                }
            }
            if let Some(m) = compiler_message {
                let first = m.lines().next().unwrap_or_default();
                let _ = writeln!(out, "  compiler: {first}");
            }
        }
    }
    out
}
