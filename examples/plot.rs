//! Draws the comparison plots from the CSV of `benches/compare/run.sh`:
//! `pi_speedup.svg` (speedup of the pi estimate against workers, per
//! backend, relative to the serial backend) and `invert_gflops.svg`
//! (GFLOP/s of inversion against n, per implementation and thread count).
//!
//! ```text
//! cargo run --release --example plot -- target/compare/results.csv docs/
//! ```

use plotters::prelude::*;
use std::collections::BTreeMap;

/// One CSV row: workload, implementation, workers, size, seconds, rate.
struct Row {
    workload: String,
    implementation: String,
    workers: u32,
    size: u64,
    seconds: f64,
    rate: f64,
}

fn read_rows(path: &str) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let mut rows = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 8 {
            return Err(format!("{path}:{}: expected 8 columns: {line}", number + 1));
        }
        let parse = |index: usize| -> Result<f64, String> {
            fields[index]
                .parse::<f64>()
                .map_err(|_| format!("{path}:{}: bad number {:?}", number + 1, fields[index]))
        };
        rows.push(Row {
            workload: fields[0].to_string(),
            implementation: fields[1].to_string(),
            workers: parse(2)? as u32,
            size: parse(3)? as u64,
            seconds: parse(4)?,
            rate: parse(5)?,
        });
    }
    Ok(rows)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: plot RESULTS.csv OUTPUT_DIR");
        std::process::exit(2);
    }
    if let Err(error) = plot(&args[0], &args[1]) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn plot(csv: &str, directory: &str) -> Result<(), String> {
    let rows = read_rows(csv)?;
    plot_pi_speedup(&rows, &format!("{directory}/pi_speedup.svg"))?;
    plot_invert_gflops(&rows, &format!("{directory}/invert_gflops.svg"))?;
    println!("wrote {directory}/pi_speedup.svg and {directory}/invert_gflops.svg");
    Ok(())
}

fn plot_pi_speedup(rows: &[Row], path: &str) -> Result<(), String> {
    let pi: Vec<&Row> = rows
        .iter()
        .filter(|row| row.workload == "pi" && row.implementation.starts_with("parpool-"))
        .collect();
    let serial = pi
        .iter()
        .find(|row| row.implementation == "parpool-serial")
        .ok_or("no parpool-serial pi row to compare with")?;
    let mut series: BTreeMap<&str, Vec<(u32, f64)>> = BTreeMap::new();
    for row in pi.iter().filter(|row| row.size == serial.size) {
        if row.implementation != "parpool-serial" {
            series
                .entry(&row.implementation)
                .or_default()
                .push((row.workers, serial.seconds / row.seconds));
        }
    }
    let max_workers = series
        .values()
        .flatten()
        .map(|point| point.0)
        .max()
        .unwrap_or(1)
        .max(2);
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Monte-Carlo pi, {} darts: speedup over serial", serial.size),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(
            0.5f64..max_workers as f64 + 0.5,
            0f64..max_workers as f64 + 0.5,
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(max_workers as usize)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("workers")
        .y_desc("speedup")
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            (1..=max_workers).map(|w| (f64::from(w), f64::from(w))),
            BLACK.mix(0.3),
        ))
        .map_err(|e| e.to_string())?
        .label("ideal")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.3)));
    for (index, (name, points)) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = points.iter().map(|(w, s)| (f64::from(*w), *s)).collect();
        draw_line(&mut chart, index, name, &points)?;
    }
    finish(&mut chart, &root)
}

fn plot_invert_gflops(rows: &[Row], path: &str) -> Result<(), String> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for row in rows.iter().filter(|row| row.workload == "invert") {
        if row.implementation == "parpool-serial" || row.implementation == "parpool-processes" {
            continue;
        }
        series
            .entry(format!("{} ({} thr.)", row.implementation, row.workers))
            .or_default()
            .push((row.size as f64, row.rate));
    }
    if series.is_empty() {
        return Err("no invert rows".to_string());
    }
    let max_n = series.values().flatten().map(|p| p.0).fold(0.0, f64::max);
    let max_rate = series.values().flatten().map(|p| p.1).fold(0.0, f64::max);
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Matrix inversion: GFLOP/s (2n³ flops)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..max_n * 1.05, 0f64..max_rate * 1.15)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("n")
        .y_desc("GFLOP/s")
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, (name, points)) in series.iter_mut().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        draw_line(&mut chart, index, name, points)?;
    }
    finish(&mut chart, &root)
}

use plotters::coord::types::RangedCoordf64;

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One labelled line with a dot at each point, in the `index`-th colour.
fn draw_line(
    chart: &mut Chart<'_>,
    index: usize,
    name: &str,
    points: &[(f64, f64)],
) -> Result<(), String> {
    let color = Palette99::pick(index).to_rgba();
    chart
        .draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws the legend and writes the file.
fn finish(
    chart: &mut Chart<'_>,
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
