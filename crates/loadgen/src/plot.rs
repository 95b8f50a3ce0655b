//! The run's plots, as SVG: settle latency over time, its histogram, throughput over time.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One order: seconds since the run's first order was created, and its settle latency in ms.
pub type Point = (f64, f64);

fn fail<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e:?}")
}

/// Settle latency of every order against when it was created.
pub fn latency_over_time(path: &Path, points: &[Point]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption("settle latency over time", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first order")
        .y_desc("POST → terminal status, ms")
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 1, BLUE.mix(0.5).filled())),
        )
        .map_err(fail)?;
    root.present().map_err(fail)
}

/// How many orders settled within each latency bucket.
pub fn latency_histogram(path: &Path, latencies_ms: &[f64]) -> anyhow::Result<()> {
    const BUCKETS: u32 = 50;
    let max = latencies_ms.iter().copied().fold(1.0, f64::max);
    let width = max / f64::from(BUCKETS);
    let mut counts = vec![0u32; BUCKETS as usize];
    for &l in latencies_ms {
        let i = ((l / width) as usize).min(BUCKETS as usize - 1);
        counts[i] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("settle latency histogram", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0u32..BUCKETS).into_segmented(), 0u32..top + top / 10 + 1)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc(format!("settle latency, buckets of {width:.1} ms"))
        .y_desc("orders")
        .x_label_formatter(&|v| match v {
            SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
                format!("{:.0}", f64::from(*i) * width)
            }
            SegmentValue::Last => String::new(),
        })
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(BLUE.filled())
                .data(counts.iter().enumerate().map(|(i, c)| (i as u32, *c))),
        )
        .map_err(fail)?;
    root.present().map_err(fail)
}

/// Accepted and settled orders per second.
pub fn throughput(path: &Path, accepted: &[usize], settled: &[usize]) -> anyhow::Result<()> {
    let len = accepted.len().max(settled.len()).max(1);
    let top = accepted
        .iter()
        .chain(settled)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("throughput over time", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0..len, 0..top + top / 10 + 1)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("second of the run")
        .y_desc("orders per second")
        .draw()
        .map_err(fail)?;
    for (series, color, label) in [(accepted, RED, "accepted"), (settled, BLUE, "settled")] {
        chart
            .draw_series(LineSeries::new(series.iter().copied().enumerate(), color))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)
}

/// Writes the three plots next to `report` (`<stem>-latency.svg`, `-histogram.svg`,
/// `-throughput.svg`).
pub fn all(
    report: &Path,
    points: &[Point],
    accepted: &[usize],
    settled: &[usize],
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let stem = report
        .file_stem()
        .context("the report path has a file name")?
        .to_string_lossy()
        .into_owned();
    let dir = report.parent().unwrap_or(Path::new("."));
    let paths = ["latency", "histogram", "throughput"].map(|k| dir.join(format!("{stem}-{k}.svg")));
    latency_over_time(&paths[0], points)?;
    latency_histogram(&paths[1], &points.iter().map(|p| p.1).collect::<Vec<_>>())?;
    throughput(&paths[2], accepted, settled)?;
    Ok(paths.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_plots_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("loadgen-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let points: Vec<Point> = (0..100)
            .map(|i| (f64::from(i) / 10.0, f64::from(i % 17)))
            .collect();
        let paths = all(&dir.join("run.json"), &points, &[5, 9, 7], &[3, 8, 10]).unwrap();
        for p in &paths {
            let svg = std::fs::read_to_string(p).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("</svg>"),
                "{}",
                p.display()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
