//! `axle plot`: loss curves of one or more runs as a PNG.

use crate::metrics::{MetricsError, Record, read_records};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// A plot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A metrics file could not be read.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A metrics file holds no training steps.
    #[error("metrics file {0} has no training steps to plot")]
    Empty(PathBuf),
    /// The image could not be drawn or written.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The PNG being written.
        path: PathBuf,
        /// The drawing backend's message.
        message: String,
    },
}

/// Draws train (solid) and eval (dots) loss against step for every metrics
/// file in `runs`, one colour per run, into the PNG `out`.
pub fn plot_losses(runs: &[PathBuf], out: &Path) -> Result<(), PlotError> {
    let mut series = Vec::new();
    for path in runs {
        let records = read_records(path)?;
        let train: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| match r {
                Record::Train { step, loss, .. } => Some((*step as f64, *loss)),
                Record::Eval { .. } => None,
            })
            .collect();
        let eval: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| match r {
                Record::Eval { step, loss, .. } => Some((*step as f64, *loss)),
                Record::Train { .. } => None,
            })
            .collect();
        if train.is_empty() {
            return Err(PlotError::Empty(path.clone()));
        }
        series.push((path.display().to_string(), train, eval));
    }
    draw(&series, out).map_err(|e| PlotError::Draw {
        path: out.to_path_buf(),
        message: e.to_string(),
    })
}

type Series = (String, Vec<(f64, f64)>, Vec<(f64, f64)>);

fn draw(series: &[Series], out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let points = || series.iter().flat_map(|(_, t, e)| t.iter().chain(e));
    let max_step = points().map(|p| p.0).fold(1.0, f64::max);
    let max_loss = points()
        .map(|p| p.1)
        .filter(|l| l.is_finite())
        .fold(0.0, f64::max);
    let root = BitMapBackend::new(out, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("loss", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_step, 0.0..max_loss * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .draw()?;
    for (i, (name, train, eval)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                train.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(format!("{name} (train)"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
        chart.draw_series(eval.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
